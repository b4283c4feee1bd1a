"""pynetdicom's polling loops made to wake when there is work, for our acceptor associations.

pynetdicom runs two threads per association that poll: the DUL reactor sleeps 1 ms whenever
it found nothing to do, then looks at its socket and its send queue; the association reactor
sleeps 1 ms, then looks for a decoded DIMSE message or an A-RELEASE / A-ABORT. A query
crosses both loops on the way in and a release crosses them three times, so each modality
query waited a few milliseconds on sleeps alone. Here:
- the DUL's idle sleep becomes a wait on its socket (same 1 ms at most: its timers and its
  send queue are still looked at as often), so a PDU that arrives is read at once;
- the association reactor's look-up waits on an event set whenever a DIMSE message or an
  upper-layer primitive is queued for it, instead of finding the queue empty for 1 ms more.
Both only change how long a loop waits, never what it does.
"""

from __future__ import annotations

import queue
import select
import threading
from typing import Any

from pynetdicom.dul import DULServiceProvider

IDLE_WAIT = 0.001  # what pynetdicom's DUL sleeps when idle; now the longest it waits on its socket
REACTOR_WAIT = 0.02  # the association reactor's longest wait (it checks its kill flag and timers after)


class _PromptDUL(DULServiceProvider):
    """pynetdicom's DUL whose idle sleep (`time.sleep(self._run_loop_delay)`) is spent waiting
    on the socket: reading `_run_loop_delay` waits, then lets the sleep be zero."""

    @property  # type: ignore[override]
    def _run_loop_delay(self) -> float:
        sock = getattr(self.socket, "socket", None)
        if sock is None or self._kill_thread:
            return IDLE_WAIT
        try:
            select.select([sock], [], [], IDLE_WAIT)
        except (OSError, ValueError):  # closed meanwhile: sleep as pynetdicom would
            return IDLE_WAIT
        return 0.0

    @_run_loop_delay.setter
    def _run_loop_delay(self, value: float) -> None:  # set once by DULServiceProvider.__init__
        pass


class _WakingQueue(queue.Queue):  # type: ignore[type-arg]
    wake: threading.Event

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self.wake.set()


def make_prompt(assoc: Any) -> None:
    """Apply both to an acceptor association before its threads start (EVT_CONN_OPEN)."""
    dul, dimse = assoc.dul, assoc.dimse
    if type(dul) is DULServiceProvider:
        dul.__class__ = _PromptDUL
    wake = threading.Event()
    queues = (dimse.msg_queue, dul.to_user_queue)
    for q in queues:
        if type(q) is queue.Queue:
            q.__class__ = _WakingQueue
            q.wake = wake  # type: ignore[attr-defined]
    original = dimse.get_msg

    def get_msg(block: bool = False) -> Any:
        # The reactor asks without blocking, right after its own 1 ms sleep: wait here instead
        # until something is queued for it (only on its own thread; anyone else asks as before).
        if not block and threading.current_thread() is assoc:
            wake.clear()
            if all(q.empty() for q in queues):
                wake.wait(REACTOR_WAIT)
        return original(block)

    dimse.get_msg = get_msg
