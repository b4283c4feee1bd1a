"""HL7 application acknowledgements from clinician systems, received over MLLP.

We send ORU^R01 with MSH-15/16 = AL/AL: the receiver's immediate ACK on the same connection
means "the clinician system has it" (delivery); later, when a clinician has read the result, the
system sends an application acknowledgement to this listener:

    MSH|^~\\&|HIS|WARD||IMAGING-CV|20240101120000||ACK^R01^ACK|A123|P|2.5
    MSA|AA|CV0123456789ABCDEF01          MSA-2 = our MSH-10 (the notification's identifier)
    EVN||20240101120000||||D001^李医生     optional: EVN-5 who read it (id^name), EVN-6 when
    NTE|1||已处理：急诊胸腔闭式引流         optional: the action taken

MSA-1 AA/CA acknowledges the critical value (channel "hl7"); AE/AR is logged as a refusal.
We answer with our own ACK: AA, or AE with ERR 204 for an identifier we never sent.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from imaging_common import audit
from imaging_common.hl7 import HL7Error, HL7Metrics, Message, MessageService, MLLPServer
from imaging_common.hl7 import ack as acks

from critical_values.domain import lifecycle, notifications
from critical_values.domain.errors import CriticalError

log = logging.getLogger(__name__)


def _when(value: str) -> datetime:
    digits = "".join(ch for ch in value if ch.isdigit())[:14]
    if len(digits) >= 12:
        with contextlib.suppress(ValueError):
            return datetime.strptime(digits.ljust(14, "0"), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return datetime.now(UTC)


def make_handler(ctx: Any):  # type: ignore[no-untyped-def]
    async def handle(message: Message) -> str | None:
        code, trigger, _ = message.type
        if code != "ACK":
            raise HL7Error(acks.UNSUPPORTED_MESSAGE_TYPE, f"only ACK (application acknowledgement) is accepted here, "
                           f"not {code}^{trigger}", "MSH", 1, 9, reject=True)
        status, ref = message.field("MSA", 1), message.field("MSA", 2)
        if not ref:
            raise HL7Error(acks.REQUIRED_FIELD_MISSING, "MSA-2 must carry the MSH-10 of our notification", "MSA", 1, 2)
        by_id, by_name = message.field("EVN", 5, component=1), message.field("EVN", 5, component=2)
        who = by_name or by_id or f"system:{message.field('MSH', 3)}"
        at = _when(message.field("EVN", 6)) if message.field("EVN", 6) else datetime.now(UTC)
        action = message.field("NTE", 3) or None
        async with ctx.pool.acquire() as conn, conn.transaction():
            note = await notifications.by_reference(conn, ref)
            if note is None:
                raise HL7Error(acks.UNKNOWN_KEY_IDENTIFIER, f"no critical-value notification {ref}", "MSA", 1, 2)
            if status not in ("AA", "CA"):
                await lifecycle.log_action(conn, note["critical_id"], actor=who, action="receiver-refused",
                                           channel="hl7", detail={"msa": status, "ref": ref,
                                                                  "text": message.field("MSA", 3)})
                return "refusal recorded"
            try:
                cv, changed = await lifecycle.acknowledge(
                    conn, note["critical_id"], by=who, channel="hl7", action_taken=action, at=at,
                    detail={"notification_id": ref, "by_id": by_id, "control_id": message.control_id})
            except CriticalError as exc:
                raise HL7Error(acks.APPLICATION_RECORD_LOCKED, str(exc), "MSA", 1, 2) from None
            await audit.record(conn, actor=who, action="update", entity="critical_value",
                               entity_id=note["critical_id"], patient_id=cv["patient_id"],
                               detail={"via": "hl7-application-ack", "notification_id": ref, "changed": changed})
        return "acknowledged" if changed else "already acknowledged"

    return handle


@contextlib.asynccontextmanager
async def mllp_listener(ctx: Any) -> AsyncIterator[None]:
    s = ctx.settings
    if not getattr(s, "critical_mllp_enabled", True):
        yield
        return
    service = MessageService(make_handler(ctx), application=s.critical_sending_app,
                             facility=s.critical_sending_facility)
    async with MLLPServer(service, s.critical_mllp_host, s.critical_mllp_port,
                          metrics=HL7Metrics(ctx.spec.name, ctx.registry)) as server:
        ctx.extras["mllp_port"] = server.port
        yield
