"""A test SMSC: an SMPP 3.4 server on 127.0.0.1 that takes binds and submit_sm and keeps every message.

Built on smpplib's PDU codec (the same library the portal's SMPP provider speaks with), so the bytes on
the wire are real SMPP. Tests read what it received (`messages`, `wait_for`) to learn, for instance,
the sign-in code a patient would have read on their phone.

    async with TestSmsc() as smsc:       # smsc.port
        ...
        text = await smsc.wait_for("8613800138000")
"""

from __future__ import annotations

import asyncio
import itertools
import struct
from dataclasses import dataclass, field
from typing import Any

import smpplib.consts
import smpplib.smpp

RESPONSES = {"bind_transmitter": "bind_transmitter_resp", "bind_transceiver": "bind_transceiver_resp",
             "bind_receiver": "bind_receiver_resp", "unbind": "unbind_resp", "enquire_link": "enquire_link_resp"}


@dataclass(frozen=True)
class Received:
    system_id: str
    destination: str
    text: str
    message_id: str


def _text(pdu: Any) -> str:
    raw = pdu.short_message or getattr(pdu, "message_payload", None) or b""
    return raw.decode("utf-16-be") if int(pdu.data_coding or 0) == 8 else raw.decode("latin-1")


@dataclass
class TestSmsc:
    """`refuse_next`: that many submits are answered with this status (e.g. throttled) before accepting;
    `delay`: seconds each submit waits for its answer (a slow SMSC, to stop a sender mid-send)."""

    __test__ = False  # not a pytest test class

    password: str | None = None  # when set, a bind with another password is refused
    messages: list[Received] = field(default_factory=list)
    refuse_next: int = 0
    refuse_status: int = smpplib.consts.SMPP_ESME_RTHROTTLED
    delay: float = 0.0
    port: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> TestSmsc:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def wait_for(self, destination: str, *, after: int = 0, containing: str = "", within: float = 10.0) -> str:
        """The text of the first message to `destination` beyond the first `after` ones it got, and
        `containing` this text when given."""
        def found() -> list[Received]:
            mine = [m for m in self.messages if m.destination == destination][after:]
            return [m for m in mine if containing in m.text]

        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: bool(found())), within)
        return found()[0].text

    def to(self, destination: str) -> list[str]:
        return [m.text for m in self.messages if m.destination == destination]

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        system_id = ""
        try:
            while True:
                header = await reader.readexactly(4)
                (length,) = struct.unpack(">L", header)
                pdu = smpplib.smpp.parse_pdu(header + await reader.readexactly(length - 4),
                                             allow_unknown_opt_params=True, need_sequence=False)
                status, extra = smpplib.consts.SMPP_ESME_ROK, {}
                if pdu.command.startswith("bind_"):
                    system_id = pdu.system_id.decode() if isinstance(pdu.system_id, bytes) else str(pdu.system_id)
                    given = pdu.password.decode() if isinstance(pdu.password, bytes) else str(pdu.password or "")
                    if self.password is not None and given != self.password:
                        status = smpplib.consts.SMPP_ESME_RINVPASWD
                    extra = {"system_id": "TESTSMSC"}
                    command = RESPONSES[pdu.command]
                elif pdu.command == "submit_sm":
                    command = "submit_sm_resp"
                    await asyncio.sleep(self.delay)
                    if self.refuse_next > 0:
                        self.refuse_next -= 1
                        status = self.refuse_status
                    else:
                        message_id = f"M{next(self._ids):08d}"
                        extra = {"message_id": message_id}
                        destination = pdu.destination_addr.decode()
                        async with self._arrived:
                            self.messages.append(Received(system_id, destination, _text(pdu), message_id))
                            self._arrived.notify_all()
                else:
                    command = RESPONSES.get(pdu.command, "generic_nack")
                resp = smpplib.smpp.make_pdu(command, sequence=pdu.sequence, status=status, **extra)
                writer.write(resp.generate())
                await writer.drain()
                if pdu.command == "unbind":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
