"""DIMSE messages as the bytes of P-DATA-TF PDUs (PS3.8 9.3.5, E.2), for C-FIND responses sent in bulk.

pynetdicom sends each response through a queue to its DUL thread, which turns it into PDU
objects and writes them one by one (a thread hop and a poll of up to 1 ms each). A worklist
answering 10,000 items writes them here instead: each message becomes PDU bytes at once, and
many messages go out in one `sendall`.

The fragmentation is pynetdicom's (`DIMSEMessage.encode_msg`): the command set (flags 01 / 03
on its last fragment) then the data set (00 / 02), each fragment in its own PDU and no bigger
than the peer's maximum PDU length less the 6 bytes of PDV header. When the whole message fits
in one PDU, command and data set go as two PDVs of that PDU (PS3.8 9.3.5 allows several PDVs
per PDU, each still one fragment).
"""

from __future__ import annotations

import struct

_PDU = struct.Struct(">BxI")  # type 0x04, reserved, length of the PDV items that follow
_PDV = struct.Struct(">IB")  # item length (context ID + control header + fragment), context ID
COMMAND, COMMAND_LAST, DATA, DATA_LAST = b"\x01", b"\x03", b"\x00", b"\x02"
_PDV_OVERHEAD = 6  # item length (4) + context ID (1) + message control header (1)


def _pdv(context_id: int, flags: bytes, fragment: bytes) -> bytes:
    return _PDV.pack(len(fragment) + 2, context_id) + flags + fragment


def _pdu(*pdvs: bytes) -> bytes:
    return _PDU.pack(0x04, sum(map(len, pdvs))) + b"".join(pdvs)


def _fragments(context_id: int, data: bytes, more: bytes, last: bytes, max_pdu: int) -> list[bytes]:
    size = max(1, max_pdu - _PDV_OVERHEAD if max_pdu else len(data))
    chunks = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
    return [_pdu(_pdv(context_id, last if n == len(chunks) - 1 else more, chunk)) for n, chunk in enumerate(chunks)]


def message_pdus(context_id: int, command: bytes, dataset: bytes | None, max_pdu: int) -> bytes:
    """One DIMSE message (encoded command set, encoded data set or None) as P-DATA-TF PDUs.

    `max_pdu` is the peer's Maximum Length Received (0: no limit).
    """
    if dataset and (not max_pdu or len(command) + len(dataset) + 2 * _PDV_OVERHEAD <= max_pdu):
        return _pdu(_pdv(context_id, COMMAND_LAST, command), _pdv(context_id, DATA_LAST, dataset))
    out = _fragments(context_id, command, COMMAND, COMMAND_LAST, max_pdu)
    if dataset:
        out += _fragments(context_id, dataset, DATA, DATA_LAST, max_pdu)
    return b"".join(out)
