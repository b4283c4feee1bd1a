"""`make run` with a missing server: exits quickly, naming which server and how to start it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from imaging_testing import free_port


def _run_platform(env_overrides: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, **env_overrides}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "imaging_common.allinone"], env=env, capture_output=True, text=True, timeout=30
    )
    return proc, time.monotonic() - started


def test_unreachable_servers_are_named_within_ten_seconds(test_env) -> None:
    dead = free_port()  # nothing listens there
    proc, elapsed = _run_platform({
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{dead}/imaging",
        "AMQP_URL": f"amqp://guest:guest@127.0.0.1:{dead}/",
    })
    assert proc.returncode == 2
    assert elapsed < 10
    assert "postgresql at 127.0.0.1:" in proc.stderr and "rabbitmq at 127.0.0.1:" in proc.stderr
    assert "redis" not in proc.stderr  # Redis is up: only the missing ones are named
    assert "make infra" in proc.stderr
