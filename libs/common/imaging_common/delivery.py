"""The retrying delivery worker: one loop shape for every service's outbound queue.

A service keeps its queue (its table, its SQL in its domain module, its statuses and audit) and
gives the worker one callable, `round(worker_no)`: claim what is due (FOR UPDATE SKIP LOCKED, with
a lease), send it through the service's own sender, record each outcome, and return how much it
handled. The worker runs that round in `workers` loops: again at once while there was work, else
after `wake()` (work queued in this process, a NOTIFY it `listen`s for) or the poll interval (other replicas, rows
whose backoff ran out). A failing round is logged and retried at the next poll; nothing is held in
memory, so stopping (cancel, then the service's closers) loses nothing: a claimed row's lease runs
out and the row is sent again.

`backoff` is the one retry schedule (doubling from `base`, at most `cap`, optional jitter), and
`DeliveryMetrics` counts outcomes (delivered, retry, dead) per queue on the service's /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence

import asyncpg
from prometheus_client import CollectorRegistry, Counter

from imaging_common.observability import registered
from imaging_common.waiting import woken

log = logging.getLogger(__name__)

OUTCOMES = ("delivered", "retry", "dead")
STOP_GRACE = 10.0  # seconds stop() waits for the loops to end


def backoff(attempts: int, *, base: float, cap: float, jitter: float = 0.0,
            rng: Callable[[], float] = random.random) -> float:
    """Seconds before attempt `attempts + 1`: base, 2*base, 4*base, ... at most `cap`. With `jitter`
    (0..1) the delay is shortened by up to that fraction, so replicas retrying together spread out
    without ever waiting past the cap."""
    delay = min(cap, base * 2.0 ** max(0, attempts - 1))
    if jitter:
        delay *= 1.0 - min(max(jitter, 0.0), 1.0) * rng()
    return delay


class DeliveryMetrics:
    """`deliveries_total{service, queue, outcome}` on the service's registry."""

    def __init__(self, service: str, registry: CollectorRegistry | None) -> None:
        self.service = service
        self.outcomes = registered(Counter, "deliveries", "Outbound delivery attempts by queue and outcome "
                                   "(delivered, retry, dead)", ["service", "queue", "outcome"], registry)

    def count(self, queue: str, outcome: str, n: int = 1) -> None:
        if n:
            self.outcomes.labels(self.service, queue, outcome).inc(n)


Round = Callable[[int], Awaitable[int | bool]]


class RetryingWorker:
    """Runs a service's delivery `round` in `workers` loops until `stop()`."""

    def __init__(self, name: str, round: Round, *, poll: float, workers: int = 1,
                 metrics: DeliveryMetrics | None = None,
                 closers: Sequence[Callable[[], Awaitable[object]]] = ()) -> None:
        self.name = name
        self.round = round
        self.poll = poll
        self.workers = max(1, workers)
        self.metrics = metrics
        self.closers = list(closers)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listen: asyncpg.Connection | None = None

    def wake(self) -> None:
        self._wake.set()

    async def listen(self, database_url: str, channel: str, payload: str) -> None:
        """Wake on PostgreSQL `NOTIFY channel, payload` (the service's schema: another schema's rows on
        the same database wake nothing). Without LISTEN the queue is still drained, at poll latency."""

        def on_notify(_conn: object, _pid: int, _channel: str, sent: str) -> None:
            if sent == payload:
                self.wake()

        try:
            self._listen = await asyncpg.connect(database_url, timeout=5)
            await self._listen.add_listener(channel, on_notify)
        except Exception as exc:
            log.warning("%s cannot LISTEN (%s); polling", self.name, exc)

    def count(self, outcome: str, n: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.count(self.name, outcome, n)

    def start(self) -> None:
        for n in range(self.workers):
            self._tasks.append(asyncio.create_task(self._loop(n), name=f"{self.name}-{n}"))

    async def stop(self) -> None:
        """Cancel the loops, wait for them, then close the senders (in the order given)."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:  # bounded: a loop that ignores its cancellation must not hold the shutdown for good
            _, running = await asyncio.wait(self._tasks, timeout=STOP_GRACE)
            if running:
                log.error("%s: %d loop(s) still running %.0f s after the stop", self.name, len(running), STOP_GRACE)
        self._tasks.clear()
        for close in self.closers:
            try:
                await close()
            except Exception as exc:  # one sender failing to close leaves the others to close
                log.warning("%s: closing: %s: %s", self.name, type(exc).__name__, exc)
        if self._listen is not None:
            with contextlib.suppress(Exception):
                await self._listen.close(timeout=2)
            self._listen = None

    async def _loop(self, n: int) -> None:
        while True:
            self._wake.clear()  # before the round: a wake during it runs another round at once
            try:
                if await self.round(n):
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:  # PostgreSQL or a sender away: the rows wait in the table
                log.exception("%s: delivery round failed", self.name)
            await woken(self._wake, self.poll)
