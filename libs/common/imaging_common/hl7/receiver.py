"""`MessageService`: bytes in, ACK bytes out — decode (MSH-18), parse, dispatch, acknowledge.

    service = MessageService(handle, application="IMAGING", facility="RIS")
    async with MLLPServer(service, host, port): ...

`handle(message)` does the work (in one transaction, so nothing is half-stored) and returns an
optional note for MSA-3; it raises `HL7Error` to answer AE (or AR when `reject`), naming the
problem in ERR. A message that cannot be decoded or parsed is answered AR. Any other exception
is AE with code 207 and is logged without the message content (it holds patient data).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

from imaging_common.hl7 import ack as acks
from imaging_common.hl7.access import current_admission
from imaging_common.hl7.ack import HL7Error, build_ack
from imaging_common.hl7.charset import UnsupportedCharset, decode
from imaging_common.hl7.message import HL7ParseError, Message
from imaging_common.hl7.mllp import control_id

log = logging.getLogger(__name__)

MessageHandler = Callable[[Message], Awaitable[str | None]]
# The (host, port) the message being handled came from, for a handler that must know who is speaking
# (an acknowledgement accepted only from its receiver's addresses); None outside a handler.
current_peer: ContextVar[tuple[str, int] | None] = ContextVar("hl7_peer", default=None)
# MSH-10 of the message being answered as read from its bytes (for an AR to a message that does not parse).
_answered: ContextVar[str | None] = ContextVar("hl7_answered_id", default=None)


class MessageService:
    def __init__(self, handle: MessageHandler, *, application: str = "IMAGING", facility: str = "RIS",
                 default_charset: str = "utf-8"):
        self.handle = handle
        self.application = application
        self.facility = facility
        self.default_charset = default_charset

    def _ack(self, original: Message | None, code: str, error: HL7Error | None, codec: str, text: str = "") -> bytes:
        reply = build_ack(original, code, error=error, text=text, sending_app=self.application,
                          sending_facility=self.facility, answered_id=_answered.get())
        return reply.to_er7().encode(codec, errors="replace")

    async def __call__(self, payload: bytes, peer: tuple[str, int] | None = None) -> bytes:
        _answered.set(control_id(payload))  # MSA-2 even when the message cannot be parsed
        codec = self.default_charset
        try:
            text, codec = decode(payload, self.default_charset)
        except UnsupportedCharset as exc:
            return self._ack(None, "AR", HL7Error(acks.TABLE_VALUE_NOT_FOUND, str(exc), "MSH", 1, 18, True), "ascii")
        except UnicodeDecodeError:
            return self._ack(None, "AR", HL7Error(acks.DATA_TYPE_ERROR, "bytes do not match the MSH-18 character set",
                                                  "MSH", 1, 18, True), "ascii")
        try:
            message = Message.parse(text)
        except HL7ParseError as exc:
            return self._ack(None, "AR", HL7Error(acks.SEGMENT_SEQUENCE_ERROR if exc.segment != "MSH"
                                                  else acks.REQUIRED_FIELD_MISSING, str(exc), exc.segment, 1,
                                                  exc.position, True), codec)
        kind = "^".join(message.type[:2])
        admission = current_admission.get()  # a known-peer gate admitted the connection: is this its sender?
        if admission is not None:
            refusal = await admission.refuse_sender(message.field("MSH", 3, component=1),
                                                    message.field("MSH", 4, component=1), message.control_id)
            if refusal:
                log.info("HL7 %s %s refused: %s", kind, message.control_id, refusal)
                return self._ack(message, "AR", HL7Error(acks.APPLICATION_INTERNAL_ERROR, refusal, "MSH", 1, 3,
                                                         True), codec)
        token = current_peer.set(peer)
        try:
            note = await self.handle(message)
        except HL7Error as err:
            log.info("HL7 %s %s answered %s: %s", kind, message.control_id, "AR" if err.reject else "AE", err.text)
            return self._ack(message, "AR" if err.reject else "AE", err, codec)
        except Exception:
            log.exception("HL7 %s %s failed", kind, message.control_id)
            return self._ack(message, "AE", HL7Error(acks.APPLICATION_INTERNAL_ERROR,
                                                     "internal error; nothing was stored", "MSH", 1, None), codec)
        finally:
            current_peer.reset(token)
        log.info("HL7 %s %s accepted", kind, message.control_id)
        return self._ack(message, "AA", None, codec, note or "")
