"""RabbitMQ housekeeping of test sessions: every namespace a session made is deleted at its end, and at its
start those of sessions that died without cleaning up (no marker connection of theirs on PostgreSQL).

Why it matters: each namespace holds 21 quorum queues (7 services x main, retry, dead letters), each a Raft
server inside the broker. Namespaces left behind by sub-platforms (security sandboxes, e2e clusters, starter
runs) and by killed runs piled up to over 300 quorum queues on this 2-core machine; the broker then took
minutes to start and, under a full test run, stopped taking connections (its file handles ran out with
sockets it never got to serve). The namespaces are listed with `rabbitmqctl`, which the broker's own machine
has; without it (a remote broker) only the session's own namespace is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import subprocess
import threading
from collections.abc import Iterable

import asyncpg

log = logging.getLogger(__name__)

EXCHANGE_SUFFIX = ".events"
RUN_ID = re.compile(r"^test-([0-9a-f]{10})")


def broker_namespaces() -> list[str] | None:
    """Namespaces with an exchange on the local broker (None: no rabbitmqctl here, or it failed)."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        return None
    try:
        out = subprocess.run([ctl, "list_exchanges", "name", "-q", "--no-table-headers"], capture_output=True,
                             text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return sorted({line.strip()[: -len(EXCHANGE_SUFFIX)] for line in out.splitlines()
                   if line.strip().endswith(EXCHANGE_SUFFIX)})


def of_session(namespaces: Iterable[str], session_namespace: str) -> list[str]:
    """The session's namespace and those made from it (`<ns>-sec`, `<ns>-c1a2b3`, ...)."""
    return [ns for ns in namespaces if ns == session_namespace or ns.startswith(session_namespace + "-")]


MARKER = "imaging-test-{run_id}"  # application_name of the connection a live session holds (SessionMarker)


class SessionMarker:
    """One PostgreSQL connection held for the whole test session, named after its run id: what tells a later
    session this one is alive (a killed run leaves its database behind, so that cannot tell)."""

    def __init__(self, server_url: str, run_id: str) -> None:
        self.server_url, self.run_id = server_url, run_id
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._hold, name="test-session-marker", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _hold(self) -> None:
        async def hold() -> None:
            conn = await asyncpg.connect(self.server_url,
                                         server_settings={"application_name": MARKER.format(run_id=self.run_id)})
            self._ready.set()
            try:
                await asyncio.to_thread(self._stop.wait)
            finally:
                await conn.close()

        try:
            asyncio.run(hold())
        except Exception as exc:  # no marker: a later session will take this one for dead, and clean it up
            log.warning("test session marker not held: %s", exc)
        finally:
            self._ready.set()


async def of_dead_sessions(namespaces: Iterable[str], server_url: str) -> list[str]:
    """Test namespaces whose session holds no marker connection (it ended, or was killed)."""
    conn = await asyncpg.connect(server_url)
    try:
        alive = {r["application_name"] for r in await conn.fetch("SELECT application_name FROM pg_stat_activity")}
    finally:
        await conn.close()
    dead = []
    for ns in namespaces:
        match = RUN_ID.match(ns)
        if match and MARKER.format(run_id=match.group(1)) not in alive:
            dead.append(ns)
    return dead


def delete(amqp_url: str, namespaces: Iterable[str]) -> None:
    from imaging_common.events.topology import delete_namespace

    for ns in namespaces:
        with contextlib.suppress(Exception):
            asyncio.run(asyncio.wait_for(delete_namespace(amqp_url, ns), 60))
