"""The reactor guard: a response that arrives while the reactor sits between its checkpoint and
its queue look-up still reaches the send_* that waits for it.

The interleaving is forced, not hoped for: the requestor's reactor is held for 50 ms right after
its checkpoint wait returned (a descheduled thread), the C-ECHO is sent in that window, and the
caller reaches its queue only after 150 ms (descheduled too), by which time the response has
been queued and the reactor has looked.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from imaging_common.dicom import reactor_guard
from imaging_common.testing import free_port
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]


class _HeldCheckpoint(threading.Event):
    """The reactor's checkpoint; when armed, the reactor thread stalls once after wait() returns."""

    def __init__(self, reactor: threading.Thread) -> None:
        super().__init__()
        self.set()
        self.reactor, self.armed, self.in_window = reactor, False, threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        passed = super().wait(timeout)
        if self.armed and threading.current_thread() is self.reactor:
            self.armed = False
            self.in_window.set()
            time.sleep(0.05)
        return passed


def _echo_in_the_window(assoc: Any) -> int | None:
    checkpoint = _HeldCheckpoint(assoc)
    assoc._reactor_checkpoint = checkpoint
    original = assoc.dimse.get_msg

    def late_caller(block: bool = False) -> Any:
        if block:
            time.sleep(0.15)
        return original(block)

    assoc.dimse.get_msg = late_caller
    checkpoint.armed = True
    assert checkpoint.in_window.wait(2)
    status = assoc.send_c_echo()
    return int(status.Status) if "Status" in status else None


def test_a_response_is_never_taken_by_the_reactor() -> None:
    reactor_guard.install()
    scp = AE(ae_title="ECHO_SCP")
    scp.add_supported_context(Verification)
    port = free_port()
    server = scp.start_server(("127.0.0.1", port), block=False)
    try:
        scu = AE(ae_title="ECHO_SCU")
        scu.add_requested_context(Verification)
        scu.dimse_timeout = 3
        assoc = scu.associate("127.0.0.1", port, ae_title="ECHO_SCP")
        assert assoc.is_established
        try:
            assert _echo_in_the_window(assoc) == 0x0000
        finally:
            assoc.release()
    finally:
        server.shutdown()


def test_a_send_whose_reactor_stops_unannounced_ends_instead_of_spinning() -> None:
    """What pynetdicom's DUL does when its loop meets an exception: `assoc._kill` set directly, so a
    reactor between two looks leaves its loop unpaused while a send waits for it to pause. The send
    must go on (and end with an answer or its DIMSE timeout), not spin forever."""
    reactor_guard.install()
    scp = AE(ae_title="ECHO_SCP")
    scp.add_supported_context(Verification)
    port = free_port()
    server = scp.start_server(("127.0.0.1", port), block=False)
    try:
        scu = AE(ae_title="ECHO_SCU")
        scu.add_requested_context(Verification)
        scu.dimse_timeout = 2
        assoc = scu.associate("127.0.0.1", port, ae_title="ECHO_SCP")
        assert assoc.is_established
        # Hold the reactor inside its look-up (unpaused), as a descheduled thread would be.
        held, entered, go_on = threading.Event(), threading.Event(), threading.Event()
        original = assoc.dimse.get_msg

        def look_up(block: bool = False) -> Any:
            if not block and held.is_set() and threading.current_thread() is assoc:
                entered.set()
                go_on.wait(5)
            return original(block)

        assoc.dimse.get_msg = look_up
        held.set()
        assert entered.wait(2)
        outcome: list[Any] = []
        sender = threading.Thread(target=lambda: outcome.append(assoc.send_c_echo()), daemon=True)
        sender.start()
        time.sleep(0.1)  # the send is spinning, waiting for the reactor to pause
        assoc._kill = True  # the DUL's way of stopping it
        go_on.set()
        assoc.join(5)
        assert not assoc.is_alive()
        sender.join(10)
        assert not sender.is_alive(), "send_c_echo still spinning for a reactor that is gone"
        assert outcome
        assoc.abort()
    finally:
        server.shutdown()
