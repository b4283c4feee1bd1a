"""The modality status poller: a C-ECHO (Verification SOP class, pynetdicom) to each registered device
every IMAGING_DASHBOARD_ECHO_SECONDS; the outcome goes to domain/devices.record_echo, which sends the
alert events. pynetdicom blocks, so each echo runs in a thread; devices are echoed in parallel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg
from imaging_common.service import ServiceContext, running
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dashboard.domain import devices
from dashboard.settings import Settings

log = logging.getLogger(__name__)


def echo(*, calling: str, called: str, host: str, port: int, timeout: float) -> bool:
    """One C-ECHO: True when the device accepted the association and answered with status Success."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    assoc = ae.associate(host, port, ae_title=called)
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_echo()
        return bool(status) and status.Status == 0x0000
    finally:
        assoc.release()


class EchoPoller:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self.pool, self.settings = pool, settings
        self._task: asyncio.Task[None] | None = None
        self._woken = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dashboard-echo")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:  # the database away for a moment: try again at the next round
                log.exception("device poll failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self.settings.dashboard_echo_seconds)
            self._woken.clear()

    def wake(self) -> None:
        """A device was registered or changed: echo now rather than at the next round."""
        self._woken.set()

    async def poll_once(self) -> None:
        async with self.pool.acquire() as conn:
            targets = await devices.active_devices(conn)
        await asyncio.gather(*(self._one(d) for d in targets))

    async def _one(self, device: dict[str, Any]) -> None:
        s = self.settings
        try:
            ok = await asyncio.to_thread(echo, calling=s.dashboard_echo_ae_title, called=device["ae_title"],
                                         host=device["host"], port=device["port"], timeout=s.dashboard_echo_timeout)
        except Exception as exc:  # a name that does not resolve, a refused socket: it is unreachable
            log.info("C-ECHO to %s failed: %s", device["device_id"], exc)
            ok = False
        async with self.pool.acquire() as conn, conn.transaction():
            alert = await devices.record_echo(conn, device["device_id"], ok=ok, at=datetime.now(UTC),
                                              timezone=s.dashboard_timezone)
        if alert:
            log.warning("device %s %s", device["device_id"], alert)


def echo_listener(ctx: ServiceContext[Settings]) -> contextlib.AbstractAsyncContextManager[EchoPoller]:
    return running(ctx, "echo", EchoPoller(ctx.pool, ctx.settings))
