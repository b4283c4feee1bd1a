"""The print SCP's DIMSE-N responses encoded without building a pydicom data set for their command.

pynetdicom turns each response primitive into a command-set `Dataset` (one validated `__setattr__` per
element), encodes it once to learn the group length and once more to send it: about 1 ms of Python per
response on this 2-core machine, and a print job answers nine of them (N-GET, two N-CREATEs, N-SET per
image box, N-ACTION, two N-DELETEs), each while the modality waits. Here the command is written
straight from the primitive into Implicit VR Little Endian bytes (PS3.7 6.3.1, E.1), the element order
and list those of pynetdicom's own table (`_COMMAND_SET_KEYWORDS`), and sent in the same P-DATA
fragments `DIMSEMessage.encode_msg` makes. EVT_DIMSE_SENT still fires, with a message whose
`command_set` is read lazily from these bytes (the observers read its Status, pynetdicom logs it).

Anything this module does not know how to write (a value of another type, text outside ASCII, a
request rather than a response) goes through pynetdicom unchanged. The bytes are checked against
pynetdicom's, response by response, in tests/test_fast_dimse.py.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from functools import cache
from io import BytesIO
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.filereader import read_dataset
from pynetdicom import evt
from pynetdicom.dimse import _RSP_TO_MESSAGE
from pynetdicom.dimse_messages import _COMMAND_SET_KEYWORDS, _DATASET_KEYWORDS, _MESSAGE_TYPES
from pynetdicom.dimse_primitives import N_ACTION, N_CREATE, N_DELETE, N_EVENT_REPORT, N_GET, N_SET
from pynetdicom.pdu_primitives import P_DATA

_FAST = (N_GET, N_CREATE, N_SET, N_ACTION, N_DELETE, N_EVENT_REPORT)
_COMMAND_FIELD = {names[0]: field for field, names in _MESSAGE_TYPES.items()}  # "N-CREATE-RSP" -> 0x8140
_NO_DATA_SET, _DATA_SET = 0x0101, 0x0001


class _Unsupported(Exception):
    """A value this encoder does not write: pynetdicom writes the message."""


@cache
def _layout(message_name: str) -> tuple[tuple[int, str, str], ...]:
    """(tag, VR, keyword) of each command element a message type may carry, in tag order."""
    out = []
    for keyword in _COMMAND_SET_KEYWORDS[message_name]:
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise KeyError(keyword)
        out.append((tag, dictionary_VR(tag), keyword))
    return tuple(sorted(out))


def _value(vr: str, value: Any) -> bytes:
    if vr == "US":
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Unsupported(vr)
        return struct.pack("<H", value)
    if vr == "UL":
        return struct.pack("<L", value)
    if vr == "AT":
        tags = value if isinstance(value, list | tuple) else [value]
        return b"".join(struct.pack("<HH", int(t) >> 16, int(t) & 0xFFFF) for t in tags)
    if vr in ("UI", "LO", "AE", "SH", "CS", "LT", "ST"):
        text = str(value)
        if not text.isascii():
            raise _Unsupported("non-ASCII text")  # pynetdicom applies the default character set
        raw = text.encode("ascii")
        if len(raw) % 2:
            raw += b"\0" if vr == "UI" else b" "
        return raw
    raise _Unsupported(vr)


def encode_command(message_name: str, primitive: Any, has_data_set: bool) -> bytes:
    """The command set of `message_name` ("N-CREATE-RSP") for `primitive`, Implicit VR Little Endian."""
    body = bytearray()
    for tag, vr, keyword in _layout(message_name):
        if keyword == "CommandGroupLength":
            continue
        if keyword == "CommandField":
            value: Any = _COMMAND_FIELD[message_name]
        elif keyword == "CommandDataSetType":
            value = _DATA_SET if has_data_set else _NO_DATA_SET
        else:
            value = getattr(primitive, keyword, None)
            if value is None:
                continue
        raw = _value(vr, value)
        body += struct.pack("<HHL", tag >> 16, tag & 0xFFFF, len(raw)) + raw
    return struct.pack("<HHLL", 0, 0, 4, len(body)) + bytes(body)


def _fragments(data: bytes, last: int, more: int, max_pdu: int) -> Iterator[bytes]:
    """Each PDV of `data` with its message control header (pynetdicom's `_generate_pdv_fragments`)."""
    size = len(data) if max_pdu == 0 else max_pdu - 6
    view = memoryview(data)
    for offset in range(0, max(len(data), 1), size):
        chunk = bytes(view[offset:offset + size])
        yield (bytes((last,)) if offset + size >= len(data) else bytes((more,))) + chunk


def _sent_message(message_cls: type, command: bytes, data_set: BytesIO | None, context_id: int) -> Any:
    """pynetdicom's own message class (the standard logging handlers and our observers dispatch on it),
    without its `__init__`, which builds the command set this module exists to skip: the command set is
    read lazily from the bytes sent."""
    message = message_cls.__new__(message_cls)
    message.command_set = read_dataset(BytesIO(command), True, True)  # raw elements, decoded on access
    message.data_set = data_set
    message.context_id = context_id
    message.encoded_command_set = BytesIO(command)
    message._data_set_path = None
    message._data_set_file = None
    return message


def make_fast_responses(assoc: Any, send_msg: Callable[[Any, int], None]) -> Callable[[Any, int], None]:
    """A `dimse.send_msg` for `assoc` that writes DIMSE-N responses here and the rest with `send_msg`."""
    dimse = assoc.dimse

    def fast_send_msg(primitive: Any, context_id: int) -> None:
        if not isinstance(primitive, _FAST) or primitive.MessageIDBeingRespondedTo is None:
            send_msg(primitive, context_id)
            return
        message_cls = _RSP_TO_MESSAGE[primitive.__class__]
        name = message_cls.__name__.replace("_", "-")
        keyword = _DATASET_KEYWORDS.get(message_cls.__name__)
        data_set = getattr(primitive, keyword, None) if keyword else None
        data = data_set.getvalue() if data_set is not None else b""
        try:
            command = encode_command(name, primitive, bool(data))
        except _Unsupported:
            send_msg(primitive, context_id)
            return
        message = _sent_message(message_cls, command, data_set, context_id)
        evt.trigger(assoc, evt.EVT_DIMSE_SENT, {"message": message})
        max_pdu = dimse.maximum_pdu_size
        for fragment in _fragments(command, 0x03, 0x01, max_pdu):
            pdata = P_DATA()
            pdata.presentation_data_value_list.append((context_id, fragment))
            dimse.dul.send_pdu(pdata)
        if data:
            for fragment in _fragments(data, 0x02, 0x00, max_pdu):
                pdata = P_DATA()
                pdata.presentation_data_value_list.append((context_id, fragment))
                dimse.dul.send_pdu(pdata)

    return fast_send_msg
