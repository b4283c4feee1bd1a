"""A service as deployed, several times over: `python -m <service>` processes on free ports, each a replica
on the session's database and broker, for tests and benches that race them against each other."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from typing import IO

from imaging_testing.helpers import free_port, until_ready


@contextlib.asynccontextmanager
async def replicas(module: str, api_prefix: str, count: int = 2, *,
                   env: dict[str, str] | None = None) -> AsyncIterator[list[str]]:
    """`count` replicas of the service run by `python -m module` (settings from the environment and `env`),
    ready (`<api_prefix>/readyz` answered 200): their base URLs. Terminated on the way out, killed when one
    has not stopped within 10 s; one that exits while starting fails with the end of its stderr."""
    ports = [free_port() for _ in range(count)]
    with contextlib.ExitStack() as files:
        logs = [files.enter_context(tempfile.TemporaryFile()) for _ in ports]
        procs = [_start(module, port, log, env or {}) for port, log in zip(ports, logs, strict=True)]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        try:
            await asyncio.gather(*(_ready(proc, log, url, api_prefix) for proc, log, url in zip(procs, logs, urls,
                                                                                              strict=True)))
            yield urls
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _start(module: str, port: int, log: IO[bytes], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", module], stdout=subprocess.DEVNULL, stderr=log,
                            env={**os.environ, "IMAGING_HTTP_HOST": "127.0.0.1", "IMAGING_HTTP_PORT": str(port),
                                 "IMAGING_LOG_LEVEL": "WARNING", **env})


async def _ready(proc: subprocess.Popen[bytes], log: IO[bytes], url: str, api_prefix: str) -> None:
    def tail() -> str:
        log.seek(0)
        return log.read().decode(errors="replace")[-2000:]

    await until_ready(f"{url}{api_prefix}/readyz", proc, output=tail)
