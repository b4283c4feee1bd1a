"""The fresh-Debian check (deploy/fresh-debian-check.sh) is too slow for `make test` (a debootstrap,
every package, the venv and the suite): here it is only linted, and `make infra` read for what a bare
Debian 12 lacks. Its last real run is recorded in the README."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "fresh-debian-check.sh"


def test_script_parses_and_is_executable() -> None:
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert SCRIPT.stat().st_mode & 0o111
    text = SCRIPT.read_text()
    assert "debootstrap" in text and "unshare --net" in text and "chroot" in text
    assert "make infra && make test" in text  # the README's commands, by default


def test_make_infra_installs_what_the_makefile_assumes_and_lets_the_default_url_in() -> None:
    recipe = subprocess.run(["make", "-n", "-C", str(REPO), "infra"], capture_output=True, text=True, check=True).stdout
    for package in ("postgresql", "rabbitmq-server", "redis-server", "python3-venv", "npm"):
        assert re.search(rf"apt-get install .*\b{package}\b", recipe), package
    # Only as root, never with IMAGING_ENV=production, once (marked), loopback only, for the default user.
    assert '"$(id -u)" = 0 ] && [ "${IMAGING_ENV:-development}" != production' in recipe
    assert "host all postgres 127.0.0.1/32 trust" in recipe and "host all postgres ::1/128 trust" in recipe
    assert "grep -qF" in recipe and "main reload" in recipe


def test_readme_records_the_fresh_debian_result() -> None:
    readme = (REPO / "README.md").read_text()
    assert "deploy/fresh-debian-check.sh" in readme
    assert re.search(r"Fresh Debian 12 check.*\d{4}-\d{2}-\d{2}", readme, re.S)
