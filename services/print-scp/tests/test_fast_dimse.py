"""fast_dimse writes exactly what pynetdicom writes: the same command bytes and the same P-DATA fragments,
for every DIMSE-N response the print SCP sends (with and without a data set, with error comments and
attribute lists, at PDU sizes that split them), and hands pynetdicom what it cannot write."""

from __future__ import annotations

from io import BytesIO
from threading import Lock
from types import SimpleNamespace

import pytest
from print_scp.adapters.fast_dimse import make_fast_responses
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import generate_uid
from pynetdicom import evt
from pynetdicom._handlers import standard_dimse_sent_handler
from pynetdicom.dimse import _RSP_TO_MESSAGE
from pynetdicom.dimse_primitives import N_ACTION, N_CREATE, N_DELETE, N_EVENT_REPORT, N_GET, N_SET

FILM_BOX = "1.2.840.10008.5.1.1.2"


def _encoded(ds: Dataset) -> BytesIO:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, True
    write_dataset(fp, ds)
    return BytesIO(fp.getvalue())


def _film_box() -> Dataset:
    ds = Dataset()
    ds.ImageDisplayFormat = "STANDARD\\2,2"
    ds.FilmOrientation = "PORTRAIT"
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.1.4"
    ref.ReferencedSOPInstanceUID = generate_uid()
    ds.ReferencedImageBoxSequence = [ref] * 4
    return ds


def _responses() -> list:
    out = []
    for cls, data_kw in ((N_CREATE, "AttributeList"), (N_SET, "AttributeList"), (N_GET, "AttributeList"),
                         (N_ACTION, "ActionReply"), (N_DELETE, None), (N_EVENT_REPORT, "EventReply")):
        for status, comment, with_data in ((0x0000, None, True), (0x0000, None, False), (0x0106, "bad value 12", False),
                                           (0xB605, "odd", True)):
            p = cls()
            p.MessageIDBeingRespondedTo = 7
            p.AffectedSOPClassUID = FILM_BOX
            p.AffectedSOPInstanceUID = generate_uid()
            p.Status = status
            if comment:
                p.ErrorComment = comment
            if data_kw and with_data:
                setattr(p, data_kw, _encoded(_film_box()))
            if cls is N_ACTION:
                p.ActionTypeID = 1
            if cls is N_EVENT_REPORT:
                p.EventTypeID = 1
            out.append(p)
    p = N_SET()
    p.MessageIDBeingRespondedTo, p.AffectedSOPClassUID, p.Status = 3, FILM_BOX, 0x0105
    p.AttributeIdentifierList = [0x20100010, 0x20100030]
    out.append(p)
    return out


def _pynetdicom(primitive, context_id: int, max_pdu: int) -> list[bytes]:
    msg = _RSP_TO_MESSAGE[primitive.__class__]()
    msg.primitive_to_message(primitive)
    return [pdv[1] for p in msg.encode_msg(context_id, max_pdu) for pdv in p.presentation_data_value_list]


class _Recorder:
    """An association's `dimse` as far as fast_dimse uses it, recording what it sends."""

    def __init__(self, max_pdu: int) -> None:
        self.sent: list[tuple[int, bytes]] = []
        self.maximum_pdu_size = max_pdu
        self.dul = SimpleNamespace(send_pdu=lambda p: self.sent.extend(p.presentation_data_value_list))


@pytest.mark.parametrize("max_pdu", [0, 16384, 64])
def test_the_same_bytes_as_pynetdicom(max_pdu: int) -> None:
    for primitive in _responses():
        name = _RSP_TO_MESSAGE[primitive.__class__].__name__.replace("_", "-")
        expected = _pynetdicom(primitive, 5, max_pdu)
        dimse = _Recorder(max_pdu)
        seen: list = []

        def handlers(event, seen=seen):  # type: ignore[no-untyped-def]
            return [(lambda e: seen.append(e.message), None)] if event is evt.EVT_DIMSE_SENT else []

        assoc = SimpleNamespace(dimse=dimse, get_handlers=handlers, is_acceptor=True, abort=None,
                                _abort_nonblocking=None, _abort_blocking=None)
        make_fast_responses(assoc, lambda *a: pytest.fail("handed to pynetdicom"))(primitive, 5)
        assert [frag for _, frag in dimse.sent] == expected, name
        assert {cx for cx, _ in dimse.sent} == {5}
        (message,) = seen  # EVT_DIMSE_SENT fired once, with the status readable
        assert type(message).__name__ == name.replace("-", "_")
        assert message.command_set.Status == primitive.Status
        # pynetdicom's own logging handler dispatches on the message's class and reads its command set
        logged = standard_dimse_sent_handler(SimpleNamespace(message=message, assoc=SimpleNamespace(lock=Lock())))
        assert any(f"{name[:-4]} RSP" in line for line in logged), logged


def test_what_it_cannot_write_goes_to_pynetdicom() -> None:
    handed = []
    request = N_CREATE()  # a request, not a response
    request.MessageID, request.AffectedSOPClassUID = 1, FILM_BOX
    comment = N_DELETE()  # a comment outside ASCII
    comment.MessageIDBeingRespondedTo, comment.AffectedSOPClassUID, comment.Status = 1, FILM_BOX, 0x0110
    comment.ErrorComment = "胶片盒不存在"
    dimse = _Recorder(16384)
    assoc = SimpleNamespace(dimse=dimse, get_handlers=lambda event: [], is_acceptor=True)
    send = make_fast_responses(assoc, lambda p, cx: handed.append(p))
    send(request, 1)
    send(comment, 1)
    assert handed == [request, comment] and dimse.sent == []
