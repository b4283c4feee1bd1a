"""The housekeeping loop as a service listener: started with the service, stopped before it disconnects."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from imaging_common.service import ServiceContext

from scheduling.adapters.deps import scheduler_for
from scheduling.domain.housekeeping import Housekeeping, run_once
from scheduling.settings import Settings

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def housekeeping(ctx: ServiceContext[Settings]) -> AsyncIterator[None]:
    settings = ctx.settings
    s = scheduler_for(settings)
    no_show = settings.scheduling_no_show_after_minutes
    hk = Housekeeping(
        reminder_hours=settings.scheduling_reminder_hours, no_show_after_minutes=no_show if no_show >= 0 else None
    )
    ctx.extras["scheduler"] = s

    async def loop() -> None:
        while True:
            try:
                done = await run_once(ctx.pool, s, hk)
                if any(done.values()):
                    log.info("housekeeping: %s", done)
            except Exception:  # a failed round is logged and retried next round, never kills the service
                log.exception("housekeeping round failed")
            await asyncio.sleep(settings.scheduling_housekeeping_seconds)

    task = asyncio.create_task(loop(), name="scheduling-housekeeping")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
