"""pynetdicom's DICOM upper layer (DUL) reading PDUs without copying them four times, for the print SCP.

An image box N-SET is 8 MB or more (2048² 12-bit), in PDUs of up to `IMAGING_PRINT_MAX_PDU`. pynetdicom
3.0.4 reads each PDU 4 KB per `recv` into a growing bytearray, copies it whole to `bytes` (for
EVT_DATA_RECV), slices each presentation data value out of it (another copy), and `decode_msg` slices the
control header off (another) before writing it into the message's data set: on a busy 2-core machine
that was half of the time it took us to take in an image. Here a PDU is read with `recv_into`, in as
few calls as the kernel allows, into one buffer, and a P-DATA-TF's values are views of that buffer: the
data set's one copy is the write into the DIMSE message. Other PDUs are decoded as pynetdicom does.

And a print request (N-GET, N-CREATE, N-SET, N-ACTION, N-DELETE on an accepted context) is answered in
the DUL thread that decoded it, instead of being queued for the association's reactor thread, which
wakes, answers and queues the response for the DUL thread to wake and send: two thread hand-offs per
message, each a GIL hand-over that a loaded machine makes last. The modality waits for each answer
before it sends on (one operation at a time), so nothing is answered out of turn; the reactor still
handles anything else (C-ECHO, release, abort). An abort from such a request's handling, or from the
memory budget while a data set arrives, is queued, not waited for: a blocking abort waits for the DUL
thread to stop, and that is this thread (it waited forever, and kept the process from exiting).

EVT_DATA_RECV (the raw bytes of every PDU) is not fired for P-DATA-TF PDUs: nothing here binds it.
"""

from __future__ import annotations

import logging
import struct
import threading
from typing import Any

from imaging_common.dicom.observe import bind_association_id
from imaging_common.dicom.prompt import make_prompt
from pynetdicom import evt
from pynetdicom.dimse_primitives import N_ACTION, N_CREATE, N_DELETE, N_GET, N_SET
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_items import PresentationDataValueItem

log = logging.getLogger(__name__)
_PDU_TYPES = frozenset(range(1, 8))
_P_DATA_TF = 0x04


def _recv_into(sock: Any, view: memoryview) -> bool:
    """Fill `view` from `sock`; False when the connection ended first."""
    while len(view):
        n = sock.recv_into(view)
        if not n:
            return False
        view = view[n:]
    return True


def _fill(dul: Any, buf: bytearray, short: str | None) -> bool:
    """Fill `buf` from the association's socket; when the connection fails or ends first, Evt17 (logged as
    pynetdicom does: `short` is the message for a read that ended early) and False."""
    try:
        if _recv_into(dul.socket.socket, memoryview(buf)):
            return True
    except (OSError, TimeoutError):
        log.error("Connection closed before the entire PDU was received", exc_info=True)
    else:
        if short:
            log.error(short)
    dul.event_queue.put("Evt17")
    return False


def _pdvs(body: bytearray) -> list[PresentationDataValueItem] | None:
    """The presentation data value items of a P-DATA-TF PDU's body, as views; None if malformed."""
    items, pos, end, mv = [], 0, len(body), memoryview(body)
    while pos < end:
        if end - pos < 6:
            return None
        (length,) = struct.unpack_from(">L", body, pos)
        if length < 2 or pos + 4 + length > end:
            return None
        item = PresentationDataValueItem()
        item.presentation_context_id = body[pos + 4]
        item.presentation_data_value = mv[pos + 5:pos + 4 + length]  # type: ignore[assignment]
        items.append(item)
        pos += 4 + length
    return items


def read_pdu(dul: Any) -> None:
    """`DULServiceProvider._read_pdu_data`, reading into one buffer (same events on the same errors)."""
    header = bytearray(6)
    if not _fill(dul, header, None):
        return
    pdu_type, _, length = struct.unpack(">BBL", header)
    if pdu_type not in _PDU_TYPES:
        log.error("Unknown PDU type received '0x%02X'", pdu_type)
        dul.event_queue.put("Evt19")
        return
    body = bytearray(length)
    if not _fill(dul, body, "The received PDU is shorter than expected"):
        return
    items = _pdvs(body) if pdu_type == _P_DATA_TF else None
    if items is None:  # not P-DATA (or a malformed one): as pynetdicom does it
        try:
            pdu, event = dul._decode_pdu(header + body)
        except Exception:
            log.error("Unable to decode the received PDU data", exc_info=True)
            dul.event_queue.put("Evt19")
            return
    else:
        refusal = _count(dul.assoc, items)
        if refusal is not None:  # nothing is answered before a whole request is in: A-ABORT
            log.warning("association from %s aborted: %s", dul.assoc.requestor.ae_title, refusal)
            dul.assoc._abort_nonblocking()  # see the module's docstring
            return
        pdu, event = P_DATA_TF(), "Evt10"
        pdu.presentation_data_value_items = items
        evt.trigger(dul.assoc, evt.EVT_PDU_RECV, {"pdu": pdu})
    dul.event_queue.put(event)
    dul._recv_pdu.put(pdu)


def _count(assoc: Any, items: list[PresentationDataValueItem]) -> str | None:
    """Data set bytes arriving, against the association's memory budget (memory_budget.py)."""
    budget = getattr(assoc, "_print_budget", None)
    if budget is None:
        return None
    for item in items:
        control = item.presentation_data_value[0]
        if control & 0x01:  # a command fragment: small, not counted
            continue
        refusal = budget.arriving(id(assoc), len(item.presentation_data_value) - 1)
        if refusal is not None:
            return refusal  # type: ignore[no-any-return]
        if control & 0x02:  # the data set's last fragment: its handler holds it from now on
            budget.arrived(id(assoc))
    return None


_SERVED_HERE = (N_GET, N_CREATE, N_SET, N_ACTION, N_DELETE)


def _serve_in_dul(assoc: Any) -> None:
    """Print requests answered where they are decoded (see the module's docstring)."""
    queue = assoc.dimse.msg_queue
    put = queue.put
    dul = assoc.dul

    def put_or_serve(item: Any, block: bool = True, timeout: float | None = None) -> None:
        context_id, msg = item
        # Only once established: a modality sends its first request the moment it has the A-ASSOCIATE-AC,
        # and pynetdicom marks the association established only after its EVT_ACCEPTED handlers have run
        # in the association's thread; its N-service SCPs silently drop the response to a request served
        # before that (a print stalled for the modality's whole DIMSE timeout, ~7 % of associations
        # under load). Such a request goes to the reactor, which starts once the association is established.
        if (threading.current_thread() is dul and assoc.is_established and isinstance(msg, _SERVED_HERE)
                and msg.is_valid_request and context_id in assoc._accepted_cx and not assoc._sent_release
                and not assoc._kill):
            bind_association_id(assoc)  # logged under the association's id, as in its own thread
            # pynetdicom's ACSE swaps `assoc.abort` itself around its handlers, so it is swapped here
            # too, for the request only (see the module's docstring)
            previous = assoc.abort
            assoc.abort = assoc._abort_nonblocking
            try:
                assoc._serve_request(msg, context_id)
            finally:
                assoc.abort = previous
        else:
            put(item, block, timeout)

    queue.put = put_or_serve


def make_fast(assoc: Any, budget: Any = None) -> None:
    """make_prompt's loops, PDUs read as above (data set bytes counted against `budget`, a
    memory_budget.MemoryBudget), print requests answered in the DUL thread; for an acceptor
    association at EVT_CONN_OPEN."""
    make_prompt(assoc)
    assoc._print_budget = budget
    dul = assoc.dul
    base = type(dul)
    if not getattr(base, "_print_fast_read", False):
        dul.__class__ = _fast_class(base)
    _serve_in_dul(assoc)


_CLASSES: dict[type, type] = {}


def _fast_class(base: type) -> type:
    cls = _CLASSES.get(base)
    if cls is None:
        cls = type(f"Fast{base.__name__}", (base,), {"_read_pdu_data": read_pdu, "_print_fast_read": True})
        _CLASSES[base] = cls
    return cls
