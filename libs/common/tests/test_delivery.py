"""The library's retrying delivery worker: the schedule, the loop's rounds, wake-ups and stop."""

from __future__ import annotations

import asyncio

from imaging_common.delivery import DeliveryMetrics, RetryingWorker, backoff
from imaging_common.waiting import woken
from prometheus_client import CollectorRegistry


def test_backoff_doubles_to_the_cap() -> None:
    assert [backoff(a, base=30, cap=3600) for a in range(1, 10)] == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert backoff(0, base=2, cap=60) == 2  # before any attempt: the base


def test_jitter_shortens_never_past_the_cap() -> None:
    assert backoff(3, base=1, cap=3, jitter=0.5, rng=lambda: 1.0) == 1.5
    assert backoff(3, base=1, cap=3, jitter=0.5, rng=lambda: 0.0) == 3


async def test_rounds_run_while_there_is_work_then_wait_for_a_wake() -> None:
    work = [3, 2, 0]
    calls: list[int] = []
    closed: list[bool] = []
    rounds_done = asyncio.Event()

    async def round(worker: int) -> int:
        calls.append(worker)
        n = work.pop(0) if work else 0
        if not work:
            rounds_done.set()
        return n

    async def close() -> None:
        closed.append(True)

    registry = CollectorRegistry()
    loop = RetryingWorker("test-queue", round, poll=60, metrics=DeliveryMetrics("svc", registry), closers=[close])
    loop.start()
    await asyncio.wait_for(rounds_done.wait(), 5)
    await asyncio.sleep(0.05)
    assert len(calls) == 3  # two rounds with work, one empty, then it waits (poll is a minute)
    loop.wake()
    await asyncio.sleep(0.05)
    assert len(calls) == 4
    loop.count("delivered", 2)
    loop.count("dead")
    assert registry.get_sample_value("deliveries_total", {"service": "svc", "queue": "test-queue",
                                                          "outcome": "delivered"}) == 2
    await loop.stop()
    assert closed == [True]


async def test_a_failing_round_is_retried_at_the_next_poll() -> None:
    calls = 0

    async def round(_worker: int) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database away")
        return False

    loop = RetryingWorker("flaky", round, poll=0.05, workers=2)
    loop.start()
    await asyncio.sleep(0.3)
    await loop.stop()
    assert calls >= 3  # the loops go on after the failure


async def test_a_stop_arriving_with_a_wake_stops_the_loops() -> None:
    """A wake and a stop in the same turn of the event loop (a timer firing as the service shuts down):
    with `asyncio.wait_for` on Python 3.11 the cancellation was swallowed and stop() never returned."""
    rounds = 0

    async def round(_worker: int) -> bool:
        nonlocal rounds
        rounds += 1
        return False

    loop = RetryingWorker("test-stop", round, poll=60, workers=3)
    loop.start()
    await asyncio.sleep(0.05)  # every loop waits for a wake now
    loop.wake()
    async with asyncio.timeout(5):  # not wait_for: stop() must start in this very turn
        await loop.stop()
    assert rounds == 3  # and no round after the stop


async def test_woken_says_whether_the_event_came_and_keeps_a_cancellation() -> None:
    event = asyncio.Event()
    assert await woken(event, 0.01) is False
    event.set()
    assert await woken(event, 5) is True
    event.clear()
    task = asyncio.create_task(woken(event, 30))
    await asyncio.sleep(0)
    event.set()
    task.cancel()
    try:
        await asyncio.wait_for(task, 5)
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("the cancellation was lost")
