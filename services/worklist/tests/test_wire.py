"""C-FIND responses written as P-DATA-TF bytes (wire.py) against pynetdicom's own encoding."""

from __future__ import annotations

from io import BytesIO
from types import SimpleNamespace

import pytest
from pynetdicom.dimse_messages import C_FIND_RSP
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]
from worklist.adapters.dicom.scp import _ResponseWriter
from worklist.adapters.dicom.wire import message_pdus

CONTEXT_ID = 3


def _response(dataset: bytes | None, status: int = 0xFF00, message_id: int = 7) -> C_FIND:
    rsp = C_FIND()
    rsp.MessageIDBeingRespondedTo = message_id
    rsp.AffectedSOPClassUID = ModalityWorklistInformationFind
    rsp.Status = status
    rsp.Identifier = BytesIO(dataset) if dataset is not None else None
    return rsp


def _pynetdicom_pdus(rsp: C_FIND, max_pdu: int) -> list[bytes]:
    message = C_FIND_RSP()
    message.primitive_to_message(rsp)
    return [_pdu_bytes(p) for p in message.encode_msg(CONTEXT_ID, max_pdu)]


def _pdu_bytes(primitive: object) -> bytes:
    pdu = P_DATA_TF()
    pdu.from_primitive(primitive)
    return bytes(pdu.encode())


def _split_pdus(data: bytes) -> list[bytes]:
    out = []
    while data:
        assert data[0] == 0x04 and data[1] == 0
        length = int.from_bytes(data[2:6], "big")
        out.append(data[:6 + length])
        data = data[6 + length:]
    return out


def _pdvs(pdus: list[bytes]) -> list[tuple[int, bytes]]:
    """(context ID, control header + fragment) of every PDV, decoded by pynetdicom."""
    out = []
    for raw in pdus:
        pdu = P_DATA_TF()
        pdu.decode(raw)
        out += [(item.presentation_context_id, item.presentation_data_value)
                for item in pdu.presentation_data_value_items]
    return out


def _command(rsp: C_FIND) -> bytes:
    message = C_FIND_RSP()
    message.primitive_to_message(rsp)
    encoded = encode(message.command_set, True, True)
    assert encoded
    return encoded


DATASET = bytes(range(256)) * 7 + b"tail"  # 1796 bytes, odd content on purpose


@pytest.mark.parametrize("max_pdu", [64, 100, 257, 1024, 1800, 1900, 16384])
def test_fragmented_messages_are_pynetdicoms_bytes(max_pdu: int) -> None:
    rsp = _response(DATASET)
    ours = message_pdus(CONTEXT_ID, _command(rsp), DATASET, max_pdu)
    if len(_command(rsp)) + len(DATASET) + 12 > max_pdu:
        assert ours == b"".join(_pynetdicom_pdus(rsp, max_pdu))  # byte for byte
    else:  # fits one PDU: the same PDVs, as two PDVs of one PDU
        assert len(_split_pdus(ours)) == 1
        assert _pdvs(_split_pdus(ours)) == _pdvs(_pynetdicom_pdus(rsp, max_pdu))
    for pdu in _split_pdus(ours):
        assert len(pdu) - 6 <= max_pdu  # the peer's Maximum Length Received bounds each PDU's PDVs


@pytest.mark.parametrize("max_pdu", [0, 16384])
def test_a_whole_message_in_one_pdu_carries_the_same_pdvs(max_pdu: int) -> None:
    rsp = _response(DATASET)
    ours = _split_pdus(message_pdus(CONTEXT_ID, _command(rsp), DATASET, max_pdu))
    assert len(ours) == 1
    assert _pdvs(ours) == _pdvs(_pynetdicom_pdus(rsp, max_pdu))
    assert [flags[0] for _, flags in _pdvs(ours)] == [0x03, 0x02]  # last command, then last data set fragment


@pytest.mark.parametrize("max_pdu", [0, 40, 16384])
def test_a_final_response_without_data_set(max_pdu: int) -> None:
    rsp = _response(None, status=0x0000)
    assert message_pdus(CONTEXT_ID, _command(rsp), None, max_pdu) == b"".join(_pynetdicom_pdus(rsp, max_pdu))


def test_a_tiny_pdu_still_moves_one_byte_per_fragment() -> None:
    rsp = _response(b"\x08\x00\x50\x00\x02\x00\x00\x00AB")
    ours = message_pdus(CONTEXT_ID, _command(rsp), b"\x08\x00\x50\x00\x02\x00\x00\x00AB", 7)
    assert ours == b"".join(_pynetdicom_pdus(rsp, 7))


@pytest.mark.parametrize("status, dataset", [(0xFF00, b"\x08\x00\x50\x00\x00\x00\x00\x00"), (0xFF01, b"\0\0"),
                                             (0x0000, None), (0xFE00, None)])
def test_cached_command_sets_carry_each_querys_message_id(status: int, dataset: bytes | None) -> None:
    """The SCP encodes a response's command set once and patches the Message ID in (scp.py)."""
    writer = _ResponseWriter(SimpleNamespace(dimse=SimpleNamespace(send_msg=None)))
    for message_id in (1, 7, 300, 65535, 2):
        rsp = _response(dataset, status=status, message_id=message_id)
        assert writer.command(rsp) == _command(rsp)
