"""Waiting for a wake-up or a poll interval, whichever comes first, in a loop that is stopped by cancelling it."""

from __future__ import annotations

import asyncio


async def woken(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set, at most `seconds`; True if it was set.

    Not `asyncio.wait_for(event.wait(), seconds)`: on Python 3.11 that swallows a cancellation arriving as
    the event is set, so a worker told to stop at that moment went round its loop again, for good, and
    the shutdown that awaited it never finished (seen in the critical-values service's timers).
    `asyncio.timeout` keeps the cancellation.
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
