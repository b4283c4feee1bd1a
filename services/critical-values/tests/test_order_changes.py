"""Orders and patients change (issue 17), every event through RabbitMQ (another service's outbox and
relay, our queue, the consumer with its version check): a changed order re-routes the values still
open and unacknowledged (never an acknowledged one), order.changed applies alone, an older snapshot
after a newer one changes nothing, a merge re-points open and closed values, an unmerge's
order.changed takes them back, and partial or unversioned patient payloads never blank what is known."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import pytest
from imaging_common.events.types import (
    CriticalRaised,
    EventData,
    ExamItem,
    OrderChanged,
    OrderCreated,
    PatientMerged,
    PatientRef,
    PatientUpdated,
)
from imaging_testing import event_producer

from .conftest import Service, World, eventually

PRODUCER_SCHEMA = "critical_values_test_order_producer"
Emit = Callable[..., Awaitable[None]]


@pytest.fixture(scope="module")
async def emit(test_env: dict[str, str], pool: asyncpg.Pool) -> AsyncIterator[Emit]:
    """Registration's outbox and relay (in a schema of its own): `await emit(*events, subject=...)` commits
    each event and returns once our consumer has taken every one (applied, or stale: its id is in the inbox)."""
    async with event_producer(test_env["DATABASE_URL"], service="registration", schema=PRODUCER_SCHEMA) as produce:

        async def send(*events: EventData, subject: str) -> None:
            ids = [(await produce(data, subject)).id for data in events]

            async def taken() -> bool:
                return await pool.fetchval("SELECT count(*) FROM inbox WHERE event_id = ANY($1::text[])",
                                           ids) == len(ids)
            await eventually(taken, within=20)

        yield send


def _patient(world: World, suffix: str, **fields: Any) -> PatientRef:
    base: dict[str, Any] = dict(empi_id=f"E{world.uid}{suffix}", patient_id=f"P{world.uid}{suffix}", name="张三丰",
                                sex="M", birth_date=date(1970, 1, 2), phone="13900000000", version=2)
    base.update(fields)
    return PatientRef(**base)


def _order(world: World, n: int, patient: PatientRef, *, version: int, kind: type[OrderCreated] = OrderChanged,
           **fields: Any) -> OrderCreated:
    base: dict[str, Any] = dict(
        order_id=f"O{world.uid}{n}", accession_number=f"ACC-{world.uid}-{n}", requested_procedure_id="RP1",
        study_instance_uid=f"1.2.3.{n}", patient=patient, patient_class="inpatient", ward=f"EW-{world.uid}",
        ordering_doctor="王医生", ordering_doctor_id="D001", ordering_department=world.department,
        items=[ExamItem(code="CT-CHEST", name="胸部CT", modality="CT")], ordered_at=datetime.now(UTC),
        version=version)
    base.update(fields)
    return kind(**base)


def _raised(world: World, cid: str, accession: str, patient: PatientRef) -> CriticalRaised:
    return CriticalRaised(critical_id=cid, accession_number=accession, patient=patient, finding="肺栓塞",
                          item_code="CV-PE", modality="CT", report_id=f"R-{cid}", raised_by="dr.li",
                          raised_at=datetime.now(UTC), confirmed_by_senior=True)


def _json(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


async def test_changed_order_reroutes_open_values_only(service: Service, world: World, emit: Emit) -> None:
    await world.receiver(fhir=False)
    surgery = f"胸外科-{world.uid}"
    surgery_his = await world.receiver(fhir=False, receiver_id=f"HIS2-{world.uid}", department=surgery)
    patient = _patient(world, "A")
    acc = f"ACC-{world.uid}-1"
    # order.changed alone (no order.created before it): the order is known from it.
    await emit(_order(world, 1, patient, version=2, changed=["ward"]), subject=acc)
    info = await world.pool.fetchrow("SELECT * FROM order_info WHERE accession_number = $1", acc)
    assert info["ordering_doctor_id"] == "D001" and info["ordering_department"] == world.department

    told, still_open = f"CR-{world.uid}-told", f"CR-{world.uid}-open"
    await emit(_raised(world, told, acc, patient), _raised(world, still_open, acc, patient), subject=acc)
    for cid in (told, still_open):
        assert (await world.value(cid))["recipient_id"] == "D001"
    r = await service.client.post(f"/api/critical-values/critical-values/{told}/acknowledge",
                                  json={"action_taken": "已处理"}, headers=service.headers("clinician"))
    assert r.status_code == 200, r.text

    # The order moves to thoracic surgery, another doctor and ward: only the open value follows.
    moved = _order(world, 1, patient, version=3, changed=["ordering_doctor", "ordering_department", "ward"],
                   reason="转科", ordering_doctor="赵医生", ordering_doctor_id="D002", ordering_department=surgery,
                   ward="胸外一病区")
    await emit(moved, subject=acc)
    row = await world.value(still_open)
    assert (row["recipient_id"], row["recipient_name"], row["department"], row["ward"]) == (
        "D002", "赵医生", surgery, "胸外一病区")
    assert "re-routed" in await world.actions(still_open)
    rerouted = await world.pool.fetchrow(
        "SELECT detail FROM action_log WHERE critical_id = $1 AND action = 're-routed'", still_open)
    detail = _json(rerouted["detail"])
    assert detail["from"]["recipient_id"] == "D001" and detail["to"]["department"] == surgery
    assert detail["order_version"] == 3 and detail["reason"] == "转科"

    async def delivered_to_surgery() -> bool:
        return bool(await world.pool.fetchval(
            "SELECT 1 FROM notification WHERE critical_id = $1 AND receiver_id = $2 AND recipient_id = 'D002' "
            "AND status = 'accepted'", still_open, surgery_his))
    await eventually(delivered_to_surgery)

    acknowledged = await world.value(told)
    assert acknowledged["recipient_id"] == "D001" and acknowledged["department"] == world.department
    assert "re-routed" not in await world.actions(told)
    assert not await world.pool.fetchval("SELECT 1 FROM notification WHERE critical_id = $1 AND recipient_id = 'D002'",
                                         told)

    # Older snapshots of the order, late: stale, nothing moves back.
    await emit(_order(world, 1, patient, version=1, kind=OrderCreated), _order(world, 1, patient, version=3),
               subject=acc)
    row = await world.value(still_open)
    assert (row["recipient_id"], row["department"]) == ("D002", surgery)
    assert (await world.pool.fetchrow("SELECT ordering_doctor_id FROM order_info WHERE accession_number = $1",
                                      acc))["ordering_doctor_id"] == "D002"
    assert (await world.actions(still_open)).count("re-routed") == 1


async def test_values_follow_merge_and_unmerge(service: Service, world: World, emit: Emit) -> None:
    await world.receiver(fhir=False)
    gone = _patient(world, "B", name="李四", sex="F", birth_date=date(1980, 3, 4), phone="13800000000", version=2)
    survivor = _patient(world, "A", name="李思", sex="F", birth_date=None, phone=None, version=7)
    acc1, acc2 = f"ACC-{world.uid}-1", f"ACC-{world.uid}-2"
    await emit(_order(world, 1, gone, version=1, kind=OrderCreated), _order(world, 2, gone, version=1,
                                                                            kind=OrderCreated), subject=acc1)
    closed, still_open = f"CR-{world.uid}-closed", f"CR-{world.uid}-open"
    await emit(_raised(world, closed, acc1, gone), _raised(world, still_open, acc2, gone), subject=acc1)
    r = await service.client.post(f"/api/critical-values/critical-values/{closed}/acknowledge", json={},
                                  headers=service.headers("clinician"))
    assert r.status_code == 200, r.text

    await emit(PatientMerged(surviving=survivor, merged_empi_ids=[gone.empi_id], merged_patient_ids=[gone.patient_id],
                             merged_versions={gone.empi_id: 3}), subject=survivor.empi_id)
    for cid in (closed, still_open):
        row = await world.value(cid)
        p = _json(row["patient"])
        assert row["patient_id"] == survivor.patient_id and p["empi_id"] == survivor.empi_id and p["name"] == "李思"
        assert p["birth_date"] == "1980-03-04" and p["phone"] == "13800000000"  # the survivor's had none: kept
        assert "patient-merged" in await world.actions(cid)
    info = _json(await world.pool.fetchval("SELECT patient FROM order_info WHERE accession_number = $1", acc1))
    assert info["empi_id"] == survivor.empi_id
    r = await service.client.get(f"/api/critical-values/critical-values/{still_open}",
                                 headers=service.headers("radiologist"))
    assert r.status_code == 200 and r.json()["patient_id"] == survivor.patient_id, r.text

    # The unmerge: the restored patient's update, then its orders named theirs again (order.changed).
    restored = gone.model_copy(update={"version": 4})
    await emit(PatientUpdated(patient=restored, changed=["unmerged"]),
               _order(world, 1, restored, version=2, changed=["patient"], reason="unmerged"), subject=acc1)
    row = await world.value(closed)
    assert row["patient_id"] == gone.patient_id and _json(row["patient"])["name"] == "李四"
    assert "patient-changed" in await world.actions(closed)
    # The value of the order not (yet) announced stays with the survivor.
    assert (await world.value(still_open))["patient_id"] == survivor.patient_id


async def test_partial_or_unversioned_patient_payload_never_blanks(service: Service, world: World,
                                                                   emit: Emit) -> None:
    await world.receiver(fhir=False)
    patient = _patient(world, "C", name="王五", version=5, card_number="C123")
    acc = f"ACC-{world.uid}-1"
    await emit(_order(world, 1, patient, version=1, kind=OrderCreated), subject=acc)
    cid = f"CR-{world.uid}"
    # Raised from a report holding a partial, older identity: the order's copy fills it.
    partial = PatientRef(empi_id=patient.empi_id, patient_id=patient.patient_id, name="王五", sex="U", version=3)
    await emit(_raised(world, cid, acc, partial), subject=acc)
    p = _json((await world.value(cid))["patient"])
    assert p["sex"] == "M" and p["birth_date"] == "1970-01-02" and p["phone"] == "13900000000"
    assert p["card_number"] == "C123"

    bare = PatientRef(empi_id=patient.empi_id, patient_id=patient.patient_id, name="WANG WU", sex="U")
    await emit(PatientUpdated(patient=bare, changed=["name"]), subject=patient.empi_id)  # unversioned
    p = _json((await world.value(cid))["patient"])
    assert p["name"] == "王五" and p["sex"] == "M" and p["birth_date"] == "1970-01-02"
    newer = PatientRef(empi_id=patient.empi_id, patient_id=patient.patient_id, name="王五", sex="U", version=6,
                       phone="13700000000")
    await emit(PatientUpdated(patient=newer, changed=["phone"]), subject=patient.empi_id)
    for copy in (_json((await world.value(cid))["patient"]),
                 _json(await world.pool.fetchval("SELECT patient FROM order_info WHERE accession_number = $1", acc))):
        assert copy["phone"] == "13700000000" and copy["version"] == 6
        assert copy["sex"] == "M" and copy["birth_date"] == "1970-01-02" and copy["card_number"] == "C123"
