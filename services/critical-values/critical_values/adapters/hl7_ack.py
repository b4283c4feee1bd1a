"""HL7 application acknowledgements from clinician systems, received over MLLP.

We send ORU^R01 with MSH-15/16 = AL/AL: the receiver's immediate ACK on the same connection
means "the clinician system has it" (delivery); later, when a clinician has read the result, the
system sends an application acknowledgement to this listener:

    MSH|^~\\&|HIS|WARD||IMAGING-CV|20240101120000||ACK^R01^ACK|A123|P|2.5
    MSA|AA|CV0123456789ABCDEF01          MSA-2 = our MSH-10 (the notification's identifier)
    EVN|||||D001^李医生|20240101120000     optional: EVN-5 who read it (id^name), EVN-6 when
    NTE|1||已处理：急诊胸腔闭式引流         optional: the action taken

MSA-1 AA/CA acknowledges the critical value (channel "hl7"); AE/AR is logged as a refusal.
We answer with our own ACK: AA, or AE with ERR 204 for an identifier we never sent *to that
receiver*. The ACK is attributed to a configured receiver by MSH-3/MSH-4 (and the peer address,
when the receiver lists its addresses); MSA-2 is looked up only among that receiver's
notifications. A sender that is no configured receiver is refused (AR) and audited.
EVN-6 is what the receiver claims (an offset is honoured, none means local time); it is kept
beside the time we received the ACK, which is the acknowledgement's record.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
from imaging_common import audit
from imaging_common.hl7 import HL7Error, Message, MessageService
from imaging_common.hl7 import ack as acks
from imaging_common.hl7.mllp import service_ports
from imaging_common.hl7.receiver import current_peer
from imaging_common.service import ServiceContext

from critical_values.domain import lifecycle, notifications, recipients, times
from critical_values.domain.errors import CriticalError
from critical_values.settings import Settings

log = logging.getLogger(__name__)


def make_handler(ctx: ServiceContext[Settings]):  # type: ignore[no-untyped-def]
    local = times.zone(ctx.settings.critical_timezone)

    async def handle(message: Message) -> str | None:
        received_at = datetime.now(UTC)
        peer = current_peer.get()
        peer_host = peer[0] if peer else None
        code, trigger, _ = message.type
        if code != "ACK":
            raise HL7Error(acks.UNSUPPORTED_MESSAGE_TYPE, f"only ACK (application acknowledgement) is accepted here, "
                           f"not {code}^{trigger}", "MSH", 1, 9, reject=True)
        status, ref = message.field("MSA", 1), message.field("MSA", 2)
        if not ref:
            raise HL7Error(acks.REQUIRED_FIELD_MISSING, "MSA-2 must carry the MSH-10 of our notification", "MSA", 1, 2)
        app, facility = message.field("MSH", 3, component=1), message.field("MSH", 4, component=1)
        by_id, by_name = message.field("EVN", 5, component=1), message.field("EVN", 5, component=2)
        who = by_name or by_id or f"system:{app}"
        claimed_raw = message.field("EVN", 6)
        claimed_at = times.hl7_instant(claimed_raw, local) if claimed_raw else None
        action = message.field("NTE", 3) or None
        async with ctx.pool.acquire() as conn:
            receivers = await recipients.receivers_by_hl7_sender(conn, application=app, facility=facility,
                                                                 host=peer_host)
            if not receivers:  # audited in its own transaction: the refusal is kept
                await audit.record(conn, actor=f"hl7:{app}^{facility}", action="update", entity="critical_value",
                                   source_ip=peer_host, outcome="failure",
                                   detail={"via": "hl7-application-ack", "refused": "unknown sender",
                                           "msa2": ref, "control_id": message.control_id})
                raise HL7Error(acks.APPLICATION_INTERNAL_ERROR, f"{app}^{facility} from {peer_host} is not a "
                               "configured clinician system", "MSH", 1, 3, reject=True)
            async with conn.transaction():
                return await _acknowledge(conn, message, receivers, status=status, ref=ref, who=who, by_id=by_id,
                                          action=action, received_at=received_at, claimed_raw=claimed_raw,
                                          claimed_at=claimed_at, peer_host=peer_host,
                                          skew=times.skew_of(ctx.settings))

    return handle


async def _acknowledge(conn: asyncpg.Connection, message: Message, receivers: list[str], *, status: str, ref: str,
                       who: str, by_id: str, action: str | None, received_at: datetime, claimed_raw: str,
                       claimed_at: datetime | None, peer_host: str | None, skew: timedelta = times.SKEW) -> str:
    """Resolve MSA-2 among the notifications sent to `receivers` and acknowledge (caller's transaction)."""
    note = await notifications.by_reference(conn, ref, receivers=receivers)
    if note is None:
        raise HL7Error(acks.UNKNOWN_KEY_IDENTIFIER, f"no critical-value notification {ref} was sent to "
                       f"{message.field('MSH', 3)}", "MSA", 1, 2)
    if status not in ("AA", "CA"):
        await lifecycle.log_action(conn, note["critical_id"], actor=who, action="receiver-refused",
                                   channel="hl7", detail={"msa": status, "ref": ref,
                                                          "receiver": note["receiver_id"],
                                                          "text": message.field("MSA", 3)})
        return "refusal recorded"
    detail = {"notification_id": ref, "receiver": note["receiver_id"], "by_id": by_id,
              "control_id": message.control_id}
    if claimed_raw and claimed_at is None:
        detail["claimed_time_unreadable"] = claimed_raw
    try:
        cv, changed = await lifecycle.acknowledge(
            conn, note["critical_id"], by=who, channel="hl7", action_taken=action, at=received_at,
            claimed_at=claimed_at, skew=skew, detail=detail)
    except CriticalError as exc:
        raise HL7Error(acks.APPLICATION_RECORD_LOCKED, str(exc), "MSA", 1, 2) from None
    await audit.record(conn, actor=who, action="update", entity="critical_value",
                       entity_id=note["critical_id"], patient_id=cv["patient_id"], source_ip=peer_host,
                       detail={"via": "hl7-application-ack", "notification_id": ref,
                               "receiver": note["receiver_id"], "changed": changed,
                               **({"claimed_at_invalid": cv["acknowledged_claim_invalid"]}
                                  if changed and cv["acknowledged_claim_invalid"] else {})})
    return "acknowledged" if changed else "already acknowledged"


@contextlib.asynccontextmanager
async def mllp_listener(ctx: ServiceContext[Settings]) -> AsyncIterator[None]:
    s = ctx.settings
    if not s.critical_mllp_enabled:
        yield
        return
    service = MessageService(make_handler(ctx), application=s.critical_sending_app,
                             facility=s.critical_sending_facility)
    async with service_ports(ctx, service, host=s.critical_mllp_host, port=s.critical_mllp_port,
                             tls_port=s.critical_mllp_tls_port, mode=s.peer_mode(s.critical_mllp_peers),
                             name="critical-values-mllp"):
        yield
