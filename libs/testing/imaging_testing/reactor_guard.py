"""Close three holes in pynetdicom's association reactor (3.0.4, as the SCU of our tests and
benches): a race that loses DIMSE responses, a send that waits forever for a reactor that has
stopped, and the peer's own requests (a printer's N-EVENT-REPORT) answered out of turn.

A `send_*` call (C-ECHO, C-FIND, N-CREATE, N-ACTION...) pauses the association's reactor thread
so that the response it is about to wait for is not taken off the queue by the reactor: it
clears `_reactor_checkpoint`, then spins until `_is_paused`. The reactor sets `_is_paused`
just before `_reactor_checkpoint.wait()` and resets it just after; a reactor thread descheduled
between that `wait()` returning and its `dimse.get_msg(block=False)` is seen as paused, yet goes
on to take the peer's response, logs "Received unexpected N-xxx service message" and drops it.
The caller then waits its whole DIMSE timeout for a response that came in milliseconds. On a
busy machine this hit about 0.7 % of a day's print jobs (pynetdicom 3.0.4).

The reactor is the only caller of `get_msg(block=False)`. Here that call takes nothing while
the checkpoint is cleared, i.e. while a `send_*` owns the queue. Ordering argument: if the
sender saw `_is_paused` true, it had cleared the checkpoint before the reactor reset the flag,
hence before the reactor's check here; if the reactor's check saw the checkpoint set, the sender
clears it later and then finds `_is_paused` false and waits for the next loop.

Second, a `send_*` spinning on `_is_paused` waits forever once the reactor has stopped without
saying so: when its DUL thread meets an exception it sets `assoc._kill` directly (not `kill()`,
which would also set `_is_paused`), the reactor leaves its loop unpaused, and the modality's
thread spins at 100 % for good. Here a reactor that is not running (not started yet, told to
stop, or ended) counts as paused; the send then meets the dead connection and its DIMSE timeout,
an error the caller sees. With the first guard nothing can be taken from under a send anyway.

Third, a peer may send a request of its own at any time: a print SCP reports the printer's status
(N-EVENT-REPORT) right after an N-ACTION response. pynetdicom answers an N-EVENT-REPORT in a
thread of its own, through the same `_serve_request` the reactor uses, which sets `_is_paused`
before the handler and clears it after. From that thread both writes are wrong: the first lets a
release go out before the answer (the answer then meets Sta7, the DUL thread dies on "Invalid
event 'Evt9' for the current state 'Sta7'" and every later send waits for nothing), the second
marks a reactor that sits at its checkpoint as running, and the next send spins forever. Here
only the reactor's own thread says whether it is paused, and while any thread answers a request
the reactor counts as busy: a send or a release waits for the answer to be sent.
"""

from __future__ import annotations

import threading
from typing import Any

from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider

_installed = False
_counting = threading.Lock()  # guards each association's set of threads answering a request


def _paused(self: Association) -> bool:
    if self._kill or not self.is_alive() or threading.current_thread() is self:
        return True  # no reactor to race with, or a handler in the reactor's own thread
    answering = self.__dict__.get("_answering", set()) - {threading.get_ident()}  # a handler may send
    return bool(self.__dict__.get("_paused_flag", False)) and not answering


def _set_paused(self: Association, value: bool) -> None:
    if threading.current_thread() is self:  # the reactor; kill() from elsewhere is `_kill`, read above
        self.__dict__["_paused_flag"] = value


def install() -> None:
    """Guard every association of this process (idempotent)."""
    global _installed
    if _installed:
        return
    original = DIMSEServiceProvider.get_msg
    serve = Association._serve_request

    def get_msg(self: DIMSEServiceProvider, block: bool = False) -> Any:
        if not block and not self.assoc._reactor_checkpoint.is_set():
            return None, None  # the reactor's look-up while a send owns the queue
        return original(self, block)

    def serve_request(self: Association, msg: Any, context_id: int) -> None:
        me = threading.get_ident()
        with _counting:
            self.__dict__["_answering"] = self.__dict__.get("_answering", set()) | {me}
        try:
            serve(self, msg, context_id)
        finally:
            with _counting:
                self.__dict__["_answering"] = self.__dict__["_answering"] - {me}

    DIMSEServiceProvider.get_msg = get_msg  # type: ignore[method-assign]
    Association._serve_request = serve_request  # type: ignore[method-assign]
    Association._is_paused = property(_paused, _set_paused)  # type: ignore[assignment]
    _installed = True
