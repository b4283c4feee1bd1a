"""Times are the server's (issue 18, 3): a critical value's raise and acknowledgement times are
when they reached us; what a peer claims (a client's raised_at, HL7 EVN-6 on the ACK port, FHIR
Communication.sent / Task.lastModified, a phone call's called_at) is kept beside it and judged — in
the future beyond the skew, or before the value was raised, it is flagged and audited — and never
moves a deadline or the "acknowledged within 10 minutes" statistics."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from critical_values.domain import lifecycle, recipients, times
from imaging_common.hl7 import Message
from imaging_common.hl7.mllp import MLLPClient
from imaging_testing import free_port

from security.conftest import Sandbox
from security.unavailable import Resending

API = "/api/critical-values"
FUTURE, BEFORE = times.FUTURE, times.BEFORE_RAISED


def _at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _recent(value: str | None, seconds: float = 60) -> bool:
    at = _at(value)
    return at is not None and abs((datetime.now(UTC) - at).total_seconds()) < seconds


class Ward:
    """A department of its own, an order per value, and one clinician system (HL7 + FHIR) serving it;
    the system's own endpoints are closed ports: only its acknowledgements matter here."""

    def __init__(self, box: Sandbox, api: httpx.AsyncClient) -> None:
        self.box, self.api = box, api
        self.uid = uuid.uuid4().hex[:8]
        self.department = f"急诊科-{self.uid}"
        self.receiver = f"his-{self.uid}"
        self.rad = box.headers("radiologist")
        self.pool = box.apps["critical_values"].state.ctx.pool

    async def open(self) -> None:
        r = await self.api.put(f"{API}/receivers/{self.receiver}", headers=self.box.headers("admin"), json={
            "name": "HIS", "department": self.department, "hl7_host": "127.0.0.1", "hl7_port": free_port(),
            "fhir_base_url": f"http://127.0.0.1:{free_port()}/fhir", "fhir_request": "Task"})
        assert r.status_code == 200, r.text

    async def order(self) -> str:
        accession = f"ST{self.uid}{uuid.uuid4().hex[:6]}"
        # What order.created leaves in critical-values (who ordered, for which department), through the
        # sandbox service's own pool: no extra connection to a PostgreSQL shared with other suites.
        async with self.pool.acquire() as conn:
            await recipients.remember_order(
                conn, accession_number=accession, order_id=f"O-{accession}",
                patient={"patient_id": f"P{self.uid}", "name": "张三丰"}, patient_class="E",
                ordering_doctor_id="D001", ordering_doctor="李医生", ordering_department=self.department,
                ward=None, modality="CT")
        return accession

    async def raise_value(self, **extra: Any) -> dict[str, Any]:
        r = await self.api.post(f"{API}/critical-values", headers=self.rad, json={
            "accession_number": await self.order(), "finding": "张力性气胸", **extra})
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def value(self, critical_id: str) -> dict[str, Any]:
        r = await self.api.get(f"{API}/critical-values/{critical_id}", headers=self.rad)
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def notification(self, critical_id: str, channel: str) -> str:
        notes = (await self.value(critical_id))["notifications"]
        return str(next(n["notification_id"] for n in notes if n["channel"] == channel))


async def _hl7_ack(port: int, sender: str, ref: str, evn6: str) -> Message:
    text = (f"MSH|^~\\&|{sender}|WARD|IMAGING-CV|RIS|20240101120000||ACK^R01^ACK|T{uuid.uuid4().hex[:8]}|P|2.5|||||"
            f"UNICODE UTF-8\rMSA|AA|{ref}\rEVN||{evn6}|||D009^值班医生|{evn6}\rNTE|1||已处理\r")
    async with MLLPClient("127.0.0.1", port, timeout=10) as client:
        return Message.parse((await client.send(text)).decode())


async def test_claimed_times_are_kept_judged_and_never_the_record(sandbox: Sandbox) -> None:
    box = sandbox
    mllp_port = box.apps["critical_values"].state.ctx.extras["mllp_port"]
    async with httpx.AsyncClient(base_url=box.url, timeout=30, transport=Resending()) as api:
        ward = Ward(box, api)
        await ward.open()

        # A raised_at two days ahead no longer pushes the deadlines out; one an hour back (a
        # back-entry) is plausible and kept, but the deadlines still run from when it reached us.
        ahead = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
        future = await ward.raise_value(raised_at=ahead.isoformat())
        assert _recent(future["raised_at"]) and _at(future["raised_claimed_at"]) == ahead
        assert future["raised_claim_invalid"] == FUTURE
        assert _at(future["ack_due_at"]) - _at(future["raised_at"]) <= timedelta(minutes=30)
        back = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
        late = await ward.raise_value(raised_at=back.isoformat())
        assert _recent(late["raised_at"]) and _at(late["raised_claimed_at"]) == back
        assert late["raised_claim_invalid"] is None

        # HL7 ACK on the ACK port claiming the year 2000: closes the value now, the claim flagged.
        hl7 = await ward.raise_value()
        reply = await _hl7_ack(mllp_port, ward.receiver, await ward.notification(hl7["critical_id"], "hl7"),
                               "20000101")
        assert reply.field("MSA", 1) == "AA", reply.field("ERR", 8)
        row = await ward.value(hl7["critical_id"])
        assert row["state"] == "closed" and _recent(row["acknowledged_at"])
        assert _at(row["acknowledged_claimed_at"]).year <= 2000
        assert row["acknowledged_claim_invalid"] == BEFORE
        acked = next(t for t in row["timeline"] if t["action"] == "acknowledged")
        assert acked["detail"]["claimed_at_invalid"] == BEFORE and _recent(acked["at"])

        # FHIR: a Communication sent "tomorrow", a Task modified in 2000 (the receiver's account).
        system = {"Authorization": f"Bearer {box.token('clinician', username=ward.receiver)}"}
        fhir = await ward.raise_value()
        r = await api.post("/fhir/R4/Communication", headers=system, json={
            "resourceType": "Communication", "status": "completed",
            "inResponseTo": [{"reference": f"Communication/{await ward.notification(fhir['critical_id'], 'fhir')}"}],
            "sent": (datetime.now(UTC) + timedelta(days=1)).isoformat()})
        assert r.status_code == 201, r.text
        row = await ward.value(fhir["critical_id"])
        assert _recent(row["acknowledged_at"]) and row["acknowledged_claim_invalid"] == FUTURE
        task = await ward.raise_value()
        r = await api.put(f"/fhir/R4/Task/{await ward.notification(task['critical_id'], 'fhir')}", headers=system,
                          json={"resourceType": "Task", "status": "completed", "lastModified": "2000-01-01T08:00:00"})
        assert r.status_code == 200, r.text
        row = await ward.value(task["critical_id"])
        assert _recent(row["acknowledged_at"]) and row["acknowledged_claim_invalid"] == BEFORE

        # A plausible claim (a minute ago) is kept and not flagged.
        fine = await ward.raise_value()
        reply = await _hl7_ack(mllp_port, ward.receiver, await ward.notification(fine["critical_id"], "hl7"),
                               (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y%m%d%H%M%S+0000"))
        assert reply.field("MSA", 1) == "AA"
        row = await ward.value(fine["critical_id"])
        assert row["acknowledged_claim_invalid"] is None and row["acknowledged_claimed_at"]

        # A manual phone record "called" tomorrow: kept, flagged, acknowledged as of now when linked.
        nurse = box.headers("nurse")
        manual = await ward.raise_value()
        r = await api.post(f"{API}/manual-records", headers=nurse, json={
            "accession_number": manual["accession_number"], "finding": "张力性气胸", "called_person": "王医生",
            "called_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(), "critical_id": manual["critical_id"]})
        assert r.status_code == 201 and r.json()["acknowledged"] and r.json()["called_at_invalid"] == FUTURE, r.text
        row = await ward.value(manual["critical_id"])
        assert _recent(row["acknowledged_at"]) and row["acknowledged_claim_invalid"] == FUTURE
        assert row["manual_records"][0]["called_at_invalid"] == FUTURE

        # A phone task's outcome "called" in 2000: recorded now, the call's time flagged.
        phoned = await ward.raise_value()
        async with ward.pool.acquire() as conn, conn.transaction():
            cv = await lifecycle.get(conn, phoned["critical_id"])
            task_id = await lifecycle.create_phone_task(conn, cv, reason="test: call the ward", whom=None,
                                                        at=datetime.now(UTC))
        r = await api.post(f"{API}/phone-tasks/{task_id}/outcome", headers=nurse, json={
            "outcome": "reached", "called_person": "王医生", "called_at": "2000-01-01T00:00:00+08:00"})
        assert r.status_code == 200 and r.json()["called_at_invalid"] == BEFORE, r.text
        row = await ward.value(phoned["critical_id"])
        assert _recent(row["acknowledged_at"]) and row["acknowledged_claim_invalid"] == BEFORE
        [done] = [t for t in row["phone_tasks"] if t["task_id"] == task_id]
        assert _recent(done["recorded_at"]) and done["called_at_invalid"] == BEFORE

        # Statistics use our times: every acknowledgement above came within seconds of its raise.
        r = await api.get(f"{API}/stats", params={"group_by": "department"}, headers=box.headers("senior-radiologist"))
        assert r.status_code == 200, r.text
        [mine] = [g for g in r.json()["data"] if g["key"] == ward.department]
        assert mine["acknowledged"] == 6 and mine["completed_within_window"] == 6
        assert mine["median_ack_seconds"] < 60 and mine["open"] == 2

    # Each refused claim is on the audit trail of its value.
    flagged = await box.apps["critical_values"].state.ctx.pool.fetch(
        "SELECT entity_id, coalesce(detail->>'claimed_at_invalid', detail->>'raised_claim_invalid', "
        "detail->>'called_at_invalid') AS why FROM audit.audit_log WHERE entity IN ('critical_value', "
        "'manual_record') AND entity_id = ANY($1::text[]) AND (detail ? 'claimed_at_invalid' OR "
        "detail ? 'raised_claim_invalid' OR detail ? 'called_at_invalid')",
        [future["critical_id"], hl7["critical_id"], fhir["critical_id"], task["critical_id"],
         phoned["critical_id"]])
    assert {r["entity_id"]: r["why"] for r in flagged} == {
        future["critical_id"]: FUTURE, hl7["critical_id"]: BEFORE, fhir["critical_id"]: FUTURE,
        task["critical_id"]: BEFORE, phoned["critical_id"]: BEFORE}
