"""The reactor guard (imaging_testing.reactor_guard), each hole forced open, not hoped for:
- a response that arrives while the reactor sits between its checkpoint and its queue look-up
  (held there 50 ms, as a descheduled thread would be) still reaches the send_* waiting for it;
- a send whose reactor was stopped behind its back ends instead of spinning;
- a printer's N-EVENT-REPORT, before a reply or while the modality releases, is answered and
  neither loses the reply nor lets the release overtake the answer.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from imaging_testing import free_port, reactor_guard
from pynetdicom import AE, evt
from pynetdicom.dimse_primitives import N_EVENT_REPORT
from pynetdicom.pdu_primitives import A_RELEASE
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


PRINTER = "1.2.840.10008.5.1.1.16"


def _report(assoc: Any, context_id: int) -> None:
    """What a print SCP sends unasked: the printer's status (N-EVENT-REPORT-RQ, event type 1 NORMAL)."""
    req = N_EVENT_REPORT()
    req.MessageID = 7
    req.AffectedSOPClassUID = PRINTER
    req.AffectedSOPInstanceUID = "1.2.840.10008.5.1.1.17"
    req.EventTypeID = 1
    assoc.dimse.send_msg(req, context_id)


@contextlib.contextmanager
def _echo_peer(on_echo: Any = None) -> Iterator[int]:
    """A Verification SCP on a free port (its C-ECHO handler `on_echo`, if given)."""
    scp = AE(ae_title="ECHO_SCP")
    scp.add_supported_context(Verification)
    port = free_port()
    handlers = [(evt.EVT_C_ECHO, on_echo)] if on_echo else []
    server = scp.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)
    try:
        yield port
    finally:
        server.shutdown()


def _associate(port: int, timeout: float, handlers: list[Any] | None = None) -> Any:
    scu = AE(ae_title="ECHO_SCU")
    scu.add_requested_context(Verification)
    scu.acse_timeout = scu.dimse_timeout = timeout
    assoc = scu.associate("127.0.0.1", port, ae_title="ECHO_SCP", evt_handlers=handlers or [])
    assert assoc.is_established
    return assoc


def test_a_response_is_never_taken_by_the_reactor() -> None:
    reactor_guard.install()
    with _echo_peer() as port:
        assoc = _associate(port, 3)
        try:
            assert _echo_in_the_window(assoc) == 0x0000
        finally:
            assoc.release()


def test_a_send_whose_reactor_stops_unannounced_ends_instead_of_spinning() -> None:
    """What pynetdicom's DUL does when its loop meets an exception: `assoc._kill` set directly, so a
    reactor between two looks leaves its loop unpaused while a send waits for it to pause. The send
    must go on (and end with an answer or its DIMSE timeout), not spin forever."""
    reactor_guard.install()
    with _echo_peer() as port:
        assoc = _associate(port, 2)
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


def test_a_request_that_comes_before_the_reply_is_answered_and_the_reply_still_taken() -> None:
    """The SCP sends its printer report between the request and the reply."""
    reactor_guard.install()

    def on_echo(event: Any) -> int:
        _report(event.assoc, event.context.context_id)  # the report goes out before the echo's reply
        return 0x0000

    reports: list[int] = []
    with _echo_peer(on_echo) as port:
        assoc = _associate(port, 3, [
            (evt.EVT_N_EVENT_REPORT, lambda event: reports.append(event.request.EventTypeID) or (0x0000, None))])
        status = assoc.send_c_echo()
        assert status.get("Status") == 0x0000 and reports == [1] and assoc.is_established
        assoc.release()
        assert assoc.is_released


def test_a_release_waits_while_a_request_is_being_answered() -> None:
    """pynetdicom answers the printer's report in a thread of its own. The modality releases while
    that answer is being made: the A-RELEASE-RQ must not overtake the N-EVENT-REPORT-RSP (the DUL
    would die on Evt9 in Sta7), and the answering thread must not leave the reactor marked running
    (the release would spin forever). The answer is held until the A-RELEASE-RQ goes out, or 1 s."""
    reactor_guard.install()

    def on_echo(event: Any) -> int:
        threading.Timer(0.05, _report, (event.assoc, event.context.context_id)).start()  # after the reply
        return 0x0000

    answering, release_sent = threading.Event(), threading.Event()

    def on_report(event: Any) -> tuple[int, None]:
        answering.set()
        release_sent.wait(1)
        return 0x0000, None

    def on_acse_sent(event: Any) -> None:
        if isinstance(event.primitive, A_RELEASE):
            release_sent.set()

    died: list[str] = []
    hook, threading.excepthook = threading.excepthook, lambda args: died.append(repr(args.exc_value))
    try:
        with _echo_peer(on_echo) as port:
            assoc = _associate(port, 3, [(evt.EVT_N_EVENT_REPORT, on_report), (evt.EVT_ACSE_SENT, on_acse_sent)])
            assert assoc.send_c_echo().get("Status") == 0x0000
            assert answering.wait(3)
            releasing = threading.Thread(target=assoc.release, daemon=True)
            releasing.start()
            releasing.join(10)
            assert not releasing.is_alive(), "release() still waiting"
            assert assoc.is_released and not died, died
    finally:
        threading.excepthook = hook
