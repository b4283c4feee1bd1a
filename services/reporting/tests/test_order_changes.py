"""Orders and patients change (issue 17), every event through RabbitMQ (this service's outbox, the relay,
our queue, the consumer with its version check): order.changed applied alone, an older snapshot after
a newer one changing nothing, merges re-pointing exams and reports, a signed report flagged (never
rewritten) when its order goes to another patient, partial or unversioned patient payloads never
blanking what is known, and films matched then unmatched."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from imaging_common.events import publish
from imaging_common.events.types import (
    EventData,
    ExamCompleted,
    ExamItem,
    FilmMatched,
    FilmUnmatched,
    OrderChanged,
    OrderCreated,
    PatientMerged,
    PatientRef,
    PatientUpdated,
)
from imaging_testing.fhir import r4b

from .conftest import CONTENT, Service, World
from .peers import wait_for


async def _through_rabbitmq(svc: Service, *events: EventData, subject: str) -> None:
    """Publish each event in its own transaction and wait until our consumer has taken it (applied or
    stale: either way its id is in the inbox)."""
    ids = []
    for data in events:
        async with svc.ctx.pool.acquire() as conn, conn.transaction():
            ids.append((await publish(conn, data, source="/imaging/registration", subject=subject)).id)

    async def taken() -> bool:
        async with svc.ctx.pool.acquire() as conn:
            return await conn.fetchval("SELECT count(*) FROM inbox WHERE event_id = ANY($1::text[])", ids) == len(ids)

    await wait_for(taken, timeout=20)


def _patient(world: World, suffix: str = "", **fields: Any) -> PatientRef:
    base: dict[str, Any] = dict(empi_id=f"E{world.tag}{suffix}", patient_id=f"P{world.tag}{suffix}", name="张三",
                                name_latin="ZHANG^SAN", sex="M", birth_date=date(1970, 5, 6), phone="13900000000",
                                version=2)
    base.update(fields)
    return PatientRef(**base)


def _order(world: World, n: int, patient: PatientRef, *, version: int, kind: type[OrderCreated] = OrderChanged,
           **fields: Any) -> OrderCreated:
    base: dict[str, Any] = dict(
        order_id=f"OC{world.tag}{n}", accession_number=world.acc(n), requested_procedure_id=f"R{n}",
        study_instance_uid=f"1.2.826.0.1.3680043.8.498.{int(world.tag, 16)}.{n}", patient=patient,
        ordering_doctor="李医生", ordering_doctor_id="D001", ordering_department="呼吸内科", clinical_diagnosis="咳嗽",
        items=[ExamItem(code="CT-CHEST", name="胸部CT平扫", modality="CT", body_part="CHEST")],
        ordered_at=datetime.now(UTC), version=version)
    base.update(fields)
    return kind(**base)


def _done(world: World, n: int, patient: PatientRef) -> ExamCompleted:
    return ExamCompleted(accession_number=world.acc(n), study_instance_uid=f"1.2.3.{n}", patient=patient,
                         mpps_uid=f"1.2.3.{n}.9", station_ae_title="CT1", modality="CT",
                         completed_at=datetime.now(UTC))


async def _exam(svc: Service, accession: str) -> dict[str, Any]:
    r = await svc.client.get(f"/api/reporting/exams/{accession}", headers=svc.auth("radiologist", username="reader"))
    assert r.status_code == 200, r.text
    return r.json()


async def _worklist_row(svc: Service, accession: str) -> dict[str, Any]:
    body = (await svc.client.get("/api/reporting/worklist?include_reported=true&limit=1000",
                                 headers=svc.auth("radiologist", username="reader"))).json()
    return next(row for row in body["data"] if row["accession_number"] == accession)


async def test_order_changed_alone_then_an_older_snapshot_changes_nothing(service: Service, world: World) -> None:
    svc = service
    patient = _patient(world)
    changed = _order(world, 1, patient, version=3, changed=["items", "priority", "ordering_department"],
                     reason="加做增强", priority="urgent", ordering_department="胸外科", ward="胸外一病区",
                     clinical_diagnosis="肺占位", history="吸烟30年",
                     items=[ExamItem(code="CT-CHEST-ENH", name="胸部CT增强", modality="CT", body_part="CHEST",
                                     contrast=True),
                            ExamItem(code="CT-ABD", name="上腹部CT平扫", modality="CT", body_part="ABDOMEN")])
    await _through_rabbitmq(svc, changed, _done(world, 1, patient), subject=world.acc(1))  # no order.created first
    row = await _worklist_row(svc, world.acc(1))
    assert row["priority"] == "urgent" and row["ordering_department"] == "胸外科" and row["ward"] == "胸外一病区"
    assert row["exam_name"] == "胸部CT增强" and [i["code"] for i in row["items"]] == ["CT-CHEST-ENH", "CT-ABD"]
    assert row["clinical_diagnosis"] == "肺占位" and row["history"] == "吸烟30年"
    assert row["patient_name"] == "张三" and row["patient_id"] == patient.patient_id

    # The order.created of version 1 and a change of version 2, late: stale, nothing moves.
    older = _order(world, 1, patient.model_copy(update={"name": "张山", "version": 1}), version=1,
                   kind=OrderCreated, priority="routine", ordering_department="呼吸内科")
    await _through_rabbitmq(svc, older, older.model_copy(update={"version": 2}), subject=world.acc(1))
    again = await _worklist_row(svc, world.acc(1))
    assert {k: again[k] for k in row if k != "report_updated_at"} == {k: row[k] for k in row
                                                                     if k != "report_updated_at"}
    async with svc.ctx.pool.acquire() as conn:
        assert await conn.fetchval("SELECT version FROM subject_versions WHERE subject_key = $1",
                                   f"order:{changed.order_id}") == 3

    # A newer change applies: priority back to routine, department changed again.
    await _through_rabbitmq(svc, changed.model_copy(update={"version": 4, "priority": "routine",
                                                           "ordering_department": "呼吸内科"}),
                            subject=world.acc(1))
    latest = await _worklist_row(svc, world.acc(1))
    assert latest["priority"] == "routine" and latest["ordering_department"] == "呼吸内科"


async def test_merge_repoints_exams_and_reports_signed_ones_still_verify(service: Service, world: World) -> None:
    svc = service
    rad = svc.auth("radiologist", username=f"rad-{world.tag}")
    senior = svc.auth("senior-radiologist", username=f"senior-{world.tag}")
    gone = _patient(world, "B", name="张三", version=2)
    survivor = _patient(world, "A", name="张叁", birth_date=date(1970, 5, 6), phone=None, version=7)
    await _through_rabbitmq(svc, _order(world, 1, gone, version=1, kind=OrderCreated), _done(world, 1, gone),
                            _order(world, 2, gone, version=1, kind=OrderCreated), _done(world, 2, gone),
                            subject=world.acc(1))
    signed = await world.step(world.acc(1), "preliminary", rad, content=CONTENT)
    await world.step(world.acc(1), "final", senior)
    await world.step(world.acc(2), "save", rad, content=CONTENT)  # a draft

    await _through_rabbitmq(svc, PatientMerged(surviving=survivor, merged_empi_ids=[gone.empi_id],
                                               merged_patient_ids=[gone.patient_id],
                                               merged_versions={gone.empi_id: 3}), subject=survivor.empi_id)
    for n in (1, 2):
        view = await _exam(svc, world.acc(n))
        assert view["exam"]["empi_id"] == survivor.empi_id and view["exam"]["patient_name"] == "张叁"
        assert view["patient"]["patient_id"] == survivor.patient_id and view["patient"]["empi_id"] == survivor.empi_id
        assert view["patient"]["phone"] == "13900000000"  # the survivor's snapshot had none: not blanked
        assert view["patient_change"] is None
        assert (await _worklist_row(svc, world.acc(n)))["patient_id"] == survivor.patient_id
    # The signed report still verifies: its signatures bind the PatientID it was signed under.
    assert (await _exam(svc, world.acc(1)))["exam"]["patient_id"] == gone.patient_id
    assert (await _exam(svc, world.acc(2)))["exam"]["patient_id"] == survivor.patient_id
    verified = (await svc.client.get(f"/api/reporting/reports/{signed['report_id']}/verify", headers=senior)).json()
    assert verified["outcome"] == "valid", verified
    fhir = await svc.client.get(f"/fhir/R4/DiagnosticReport?patient={survivor.patient_id}",
                                headers=svc.auth("clinician"))
    assert r4b(fhir, resource_type="Bundle")["total"] >= 1

    # Registration then announces the orders as the survivor's (order.changed): nothing left to flag.
    await _through_rabbitmq(svc, _order(world, 1, survivor, version=2, changed=["patient"], reason="merged"),
                            subject=world.acc(1))
    assert (await _exam(svc, world.acc(1)))["patient_change"] is None


async def test_order_moved_to_another_patient_signed_report_flagged_draft_follows(service: Service,
                                                                                 world: World) -> None:
    """An unmerge gives the orders back to the restored patient (order.changed): the draft follows, the
    signed report stays as signed and is flagged for an amendment; the flag goes when the order comes
    back to the patient the report was signed for."""
    svc = service
    rad = svc.auth("radiologist", username=f"rad-{world.tag}")
    senior = svc.auth("senior-radiologist", username=f"senior-{world.tag}")
    first = _patient(world, "A", name="王五", version=4)
    other = _patient(world, "C", name="王武", sex="F", birth_date=date(1985, 1, 2), version=2)
    await _through_rabbitmq(svc, _order(world, 1, first, version=1, kind=OrderCreated), _done(world, 1, first),
                            _order(world, 2, first, version=1, kind=OrderCreated), _done(world, 2, first),
                            subject=world.acc(1))
    signed = await world.step(world.acc(1), "preliminary", rad, content=CONTENT)
    await world.step(world.acc(1), "final", senior)
    await world.step(world.acc(2), "save", rad, content=CONTENT)

    await _through_rabbitmq(svc, _order(world, 1, other, version=2, changed=["patient"], reason="patient unmerged"),
                            _order(world, 2, other, version=2, changed=["patient"], reason="patient unmerged"),
                            subject=world.acc(1))
    draft = await _exam(svc, world.acc(2))
    assert draft["exam"]["empi_id"] == other.empi_id and draft["exam"]["patient_id"] == other.patient_id
    assert draft["exam"]["sex"] == "F" and draft["patient_change"] is None
    assert [c["status"] for c in draft["patient_changes"]] == ["applied"]

    final = await _exam(svc, world.acc(1))
    assert final["exam"]["empi_id"] == first.empi_id and final["exam"]["patient_name"] == "王五"  # as signed
    change = final["patient_change"]
    assert change["to_patient"]["empi_id"] == other.empi_id and change["from_patient"]["empi_id"] == first.empi_id
    assert change["order_version"] == 2 and change["reason"] == "patient unmerged"
    assert change["report_state"] == "final"
    row = await _worklist_row(svc, world.acc(1))
    assert row["patient_change"]["to_patient"]["empi_id"] == other.empi_id
    report = (await svc.client.get(f"/api/reporting/reports/{signed['report_id']}", headers=rad)).json()
    assert report["state"] == "final" and report["version"] == signed["version"] + 1  # not one more version
    verified = (await svc.client.get(f"/api/reporting/reports/{signed['report_id']}/verify", headers=senior)).json()
    assert verified["outcome"] == "valid"

    # The order comes back to the patient the report was signed for: nothing to amend any more.
    await _through_rabbitmq(svc, _order(world, 1, first, version=3, changed=["patient"], reason="merge redone"),
                            subject=world.acc(1))
    back = await _exam(svc, world.acc(1))
    assert back["patient_change"] is None and back["exam"]["empi_id"] == first.empi_id
    assert [c["status"] for c in back["patient_changes"]] == ["resolved"]


async def test_partial_or_unversioned_patient_payload_never_blanks_known_fields(service: Service,
                                                                                world: World) -> None:
    svc = service
    patient = _patient(world, version=5)
    await _through_rabbitmq(svc, _order(world, 1, patient, version=1, kind=OrderCreated), _done(world, 1, patient),
                            subject=world.acc(1))
    # Unversioned and partial (the modality's view, say): fills nothing known, changes nothing known.
    bare = PatientRef(empi_id=patient.empi_id, patient_id=patient.patient_id, name="ZHANG SAN", sex="U")
    await _through_rabbitmq(svc, PatientUpdated(patient=bare, changed=["name"]), subject=patient.empi_id)
    view = await _exam(svc, world.acc(1))
    assert view["patient"]["name"] == "张三" and view["patient"]["sex"] == "M"
    assert view["patient"]["birth_date"] == "1970-05-06" and view["patient"]["phone"] == "13900000000"
    # An older versioned snapshot on a later exam.completed: same.
    await _through_rabbitmq(svc, _done(world, 1, bare.model_copy(update={"version": 3, "name": "张珊"})),
                            subject=world.acc(1))
    assert (await _exam(svc, world.acc(1)))["patient"]["name"] == "张三"
    # A newer, partial one: its values win, its blanks do not blank.
    newer = PatientRef(empi_id=patient.empi_id, patient_id=patient.patient_id, name="张三", sex="U", version=6,
                       phone="13700000000")
    await _through_rabbitmq(svc, PatientUpdated(patient=newer, changed=["phone"]), subject=patient.empi_id)
    view = await _exam(svc, world.acc(1))
    assert view["patient"]["phone"] == "13700000000" and view["patient"]["version"] == 6
    assert view["patient"]["sex"] == "M" and view["exam"]["sex"] == "M"
    assert view["patient"]["birth_date"] == "1970-05-06" and view["patient"]["name_latin"] == "ZHANG^SAN"
    renamed = newer.model_copy(update={"name": "张三丰", "version": 7, "phone": None})
    await _through_rabbitmq(svc, PatientUpdated(patient=renamed, changed=["name"]), subject=patient.empi_id)
    view = await _exam(svc, world.acc(1))
    assert view["patient"]["name"] == "张三丰" and view["exam"]["patient_name"] == "张三丰"
    assert view["patient"]["phone"] == "13700000000" and view["patient"]["birth_date"] == "1970-05-06"


async def test_film_matched_then_unmatched(service: Service, world: World) -> None:
    svc = service
    patient = _patient(world)
    film = f"F{world.tag}"
    # The film comes first, before the exam is even known: kept for it.
    await _through_rabbitmq(svc, FilmMatched(film_id=film, patient=patient, accession_number=world.acc(1),
                                             method="study-uid"), subject=world.acc(1))
    await _through_rabbitmq(svc, _order(world, 1, patient, version=1, kind=OrderCreated), _done(world, 1, patient),
                            FilmMatched(film_id=f"{film}-2", patient=patient, accession_number=world.acc(1),
                                        method="manual", matched_by="tech"), subject=world.acc(1))
    view = await _exam(svc, world.acc(1))
    assert [f["film_id"] for f in view["films"]] == [film, f"{film}-2"]
    assert view["films"][1]["method"] == "manual" and view["films"][1]["matched_by"] == "tech"
    assert (await _worklist_row(svc, world.acc(1)))["films"] == 2

    await _through_rabbitmq(svc, FilmUnmatched(film_id=film, patient=patient, accession_number=world.acc(1),
                                               reason="matched-again"), subject=world.acc(1))
    view = await _exam(svc, world.acc(1))
    assert [f["film_id"] for f in view["films"]] == [f"{film}-2"]
    assert (await _worklist_row(svc, world.acc(1)))["films"] == 1
