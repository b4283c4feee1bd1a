"""Container HEALTHCHECK: GET the liveness endpoint of whichever service PID 1 runs.

The image runs one service chosen by its argument (`python -m print_scp`), so the health path is
derived from PID 1's command line; IMAGING_HEALTHCHECK_URL overrides it. Standard library only,
so the check costs no imports of the platform itself.
"""

from __future__ import annotations

import os
import sys
import urllib.request

# package -> URL prefix; the all-in-one process answers on any service's prefix.
PREFIXES = {
    "print_scp": "print",
    "registration": "registration",
    "worklist": "worklist",
    "scheduling": "scheduling",
    "reporting": "reporting",
    "critical_values": "critical-values",
    "queue_calling": "queue",
    "patient_portal": "patient",
    "dashboard": "dashboard",
    "imaging_common.allinone": "registration",
}


def health_url() -> str:
    explicit = os.environ.get("IMAGING_HEALTHCHECK_URL")
    if explicit:
        return explicit
    try:
        with open("/proc/1/cmdline", "rb") as f:
            argv = [a.decode() for a in f.read().split(b"\0") if a]
    except OSError:
        argv = []
    module = argv[argv.index("-m") + 1] if "-m" in argv[:-1] else "imaging_common.allinone"
    prefix = PREFIXES.get(module, "registration")
    port = os.environ.get("IMAGING_HTTP_PORT", "8080")
    return f"http://127.0.0.1:{port}/api/{prefix}/healthz"


def main() -> int:
    url = health_url()
    try:
        with urllib.request.urlopen(url, timeout=4) as response:  # noqa: S310 (fixed local URL)
            return 0 if response.status == 200 else 1
    except Exception as exc:  # any failure is "unhealthy"; say why for `docker inspect`
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
