"""Counting the names of patients stored before the EMPI kept name counts (an upgrade).

Until every source record is counted the matcher weighs names without their frequencies (as
before the counts existed), so counting runs in the background and registration serves meanwhile;
replicas starting together share the work (store.count_names takes rows the others have not).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from imaging_common.empi import store
from imaging_common.service import ServiceContext

log = logging.getLogger(__name__)


async def count_stored_names(ctx: ServiceContext) -> int:
    try:
        async with ctx.pool.acquire() as conn:
            counted = await store.count_names(conn)
    except Exception:  # the next start counts what is left; meanwhile names weigh as before
        log.exception("EMPI name frequencies: counting stored names failed")
        return 0
    if counted:
        log.info("EMPI name frequencies: counted the names of %d stored records", counted)
    try:  # the same kind of upgrade: records stored with an older version of the blocking keys
        async with ctx.pool.acquire() as conn:
            rekeyed = await store.rekey(conn)
        if rekeyed:
            log.info("EMPI blocking keys: recomputed the keys of %d stored records", rekeyed)
    except Exception:  # the next start goes on; meanwhile those records are found by their older keys
        log.exception("EMPI blocking keys: recomputing stored records' keys failed")
    return counted


def name_count_listener(ctx: ServiceContext) -> contextlib.AbstractAsyncContextManager[Any]:
    @contextlib.asynccontextmanager
    async def run() -> AsyncIterator[asyncio.Task[int]]:
        task = asyncio.create_task(count_stored_names(ctx), name="empi-name-counts")
        ctx.extras["name_counts"] = task
        try:
            yield task
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return run()
