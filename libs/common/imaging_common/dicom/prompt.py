"""pynetdicom's polling loops made to wake when there is work, for our acceptor associations
(the worklist and print SCPs).

pynetdicom runs two threads per association that poll: the DUL reactor sleeps 1 ms whenever
it found nothing to do, then looks at its socket and its send queue; the association reactor
sleeps 1 ms, then looks for a decoded DIMSE message or an A-RELEASE / A-ABORT. A query
crosses both loops on the way in and a release crosses them three times, so each modality
query waited a few milliseconds on sleeps alone. Here:
- the DUL's idle sleep becomes a wait on its socket and on a wake-up socket pair written to
  whenever a PDU is queued for it to send (same 1 ms at most: its timers are still looked at
  as often), so a PDU that arrives is read at once and one queued is sent at once;
- the association reactor's look-up waits on an event set whenever a DIMSE message or an
  upper-layer primitive is queued for it, instead of finding the queue empty for 1 ms more.
Both only change how long a loop waits, never what it does.
"""

from __future__ import annotations

import contextlib
import queue
import select
import socket
import threading
import weakref
from collections.abc import Callable
from typing import Any

from pynetdicom.dul import DULServiceProvider

IDLE_WAIT = 0.001  # what pynetdicom's DUL sleeps when idle; now the longest it waits on its socket
REACTOR_WAIT = 0.02  # the association reactor's longest wait (it checks its kill flag and timers after)


class _PromptDUL(DULServiceProvider):
    """pynetdicom's DUL whose idle sleep (`time.sleep(self._run_loop_delay)`) is spent waiting
    on its sockets: reading `_run_loop_delay` waits, then lets the sleep be zero."""

    _wake_up: socket.socket | None = None  # readable when something was queued to send

    @property  # type: ignore[override]
    def _run_loop_delay(self) -> float:
        sock = getattr(self.socket, "socket", None)
        if sock is None or self._kill_thread:
            return IDLE_WAIT
        waits = [sock] if self._wake_up is None else [sock, self._wake_up]
        try:
            ready, _, _ = select.select(waits, [], [], IDLE_WAIT)
        except (OSError, ValueError):  # closed meanwhile: sleep as pynetdicom would
            return IDLE_WAIT
        if self._wake_up is not None and self._wake_up in ready:
            with contextlib.suppress(OSError):
                self._wake_up.recv(4096)  # the queue itself is what the loop looks at next
        return 0.0

    @_run_loop_delay.setter
    def _run_loop_delay(self, value: float) -> None:  # set once by DULServiceProvider.__init__
        pass


class _WakingQueue(queue.Queue):  # type: ignore[type-arg]
    on_put: Callable[[], None]

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self.on_put()


def _waking(q: queue.Queue[Any], on_put: Callable[[], None]) -> None:
    if type(q) is queue.Queue:
        q.__class__ = _WakingQueue
        q.on_put = on_put  # type: ignore[attr-defined]


def _ring(bell: socket.socket) -> None:
    with contextlib.suppress(OSError):  # full (the DUL has many wake-ups pending already) or closed
        bell.send(b"\0")


def make_prompt(assoc: Any) -> None:
    """Apply both to an acceptor association before its threads start (EVT_CONN_OPEN)."""
    dul, dimse = assoc.dul, assoc.dimse
    if type(dul) is DULServiceProvider:
        dul.__class__ = _PromptDUL
        wake_up, bell = socket.socketpair()
        for end in (wake_up, bell):
            end.setblocking(False)
        dul._wake_up = wake_up  # type: ignore[attr-defined]
        _waking(dul.to_provider_queue, lambda: _ring(bell))
        weakref.finalize(dul, _close, wake_up, bell)
    wake = threading.Event()
    queues = (dimse.msg_queue, dul.to_user_queue)
    for q in queues:
        _waking(q, wake.set)
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


def _close(*ends: socket.socket) -> None:
    for end in ends:
        end.close()
