"""MPPS over DICOM: IN PROGRESS -> COMPLETED/DISCONTINUED, Annex F checks, events in the outbox."""

from __future__ import annotations

import json

from imaging_testing import mpps
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from worklist.adapters.dicom.scp import WorklistSCP

from .conftest import World, now_local
from .scu import find, mwl_query, n_create, n_set


def create_attrs(w: World, n: int = 1, **overrides: object) -> Dataset:
    ds = mpps.in_progress(charset="GB18030", study_uid="1.2.3." + str(int(w.tag, 16)), accession=w.id(f"A{n}"),
                          requested_procedure_id=w.id(f"R{n}"), step_id="", patient_name="ZHANG^SAN=张^三",
                          patient_id=w.id(f"P{n}"), patient_sex="M", pps_id="PPS" + w.tag, station=w.station,
                          station_name="CT1", start=now_local())
    for k, v in overrides.items():
        if v is None:
            delattr(ds, k)
        else:
            setattr(ds, k, v)
    return ds


def final_attrs(status: str = "COMPLETED", *, with_end: bool = True) -> Dataset:
    return mpps.final(status, now_local() if with_end else None)


async def outbox(w: World, accession: str) -> list[dict]:
    rows = await w.conn.fetch("SELECT type, envelope FROM outbox WHERE envelope->>'subject' = $1 ORDER BY seq",
                              accession)
    return [{"type": r["type"], **json.loads(r["envelope"])} for r in rows]


async def step_status(w: World, n: int = 1) -> str:
    return await w.conn.fetchval("SELECT status FROM scheduled_procedure_steps WHERE accession_number = $1",
                                 w.id(f"A{n}"))


async def test_in_progress_then_completed_moves_the_step_and_emits_events(scp: WorklistSCP, world: World) -> None:
    await world.step(1)
    uid = generate_uid()
    status, _ = await n_create(scp.port, uid, create_attrs(world))
    assert status == 0x0000
    assert await step_status(world) == "in_progress"
    [started] = await outbox(world, world.id("A1"))
    assert started["type"] == "exam.started" and started["data"]["mpps_uid"] == uid
    assert started["data"]["patient"]["patient_id"] == world.id("P1")
    # the patient as registration names them, not the DICOM PN form; no version: it only fills gaps
    assert {k: started["data"]["patient"].get(k) for k in ("name", "name_latin", "sex", "version")} == {
        "name": "张三", "name_latin": "ZHANG^SAN", "sex": "M", "version": None}
    # the modality still sees it, now STARTED
    [responses] = await find(scp.port, mwl_query(station=world.station))
    assert responses[0][2].ScheduledProcedureStepSequence[0].ScheduledProcedureStepStatus == "STARTED"

    status, _ = await n_set(scp.port, uid, final_attrs("COMPLETED"))
    assert status == 0x0000
    assert await step_status(world) == "completed"
    events = await outbox(world, world.id("A1"))
    assert [e["type"] for e in events] == ["exam.started", "exam.completed"]
    assert events[1]["data"]["status"] == "completed" and events[1]["data"]["exam_code"] == "CT-CHEST"
    [responses] = await find(scp.port, mwl_query(station=world.station))
    assert [r[0] for r in responses] == [0x0000]  # done: off the worklist

    # a finished MPPS may no longer be updated (F.7.2.2: 0110, Error ID A710)
    status, rsp = await n_set(scp.port, uid, final_attrs("DISCONTINUED"))
    assert status == 0x0110 and rsp.ErrorID == 0xA710
    assert await step_status(world) == "completed"
    row = await world.conn.fetchrow("SELECT * FROM performed_procedure_steps WHERE sop_instance_uid = $1", uid)
    assert row["status"] == "COMPLETED" and row["step_ids"]
    assert json.loads(row["attributes"])["00100010"]["Value"][0]["Ideographic"] == "张^三"
    audited = await world.conn.fetch(
        "SELECT actor, detail->>'mpps_status' AS status FROM audit.audit_log WHERE detail->>'mpps_uid' = $1 "
        "ORDER BY seq", uid)
    assert [(a["actor"], a["status"]) for a in audited] == [("dicom:MODALITY1", "IN PROGRESS"),
                                                            ("dicom:MODALITY1", "COMPLETED")]


async def test_discontinued_is_announced_as_such(scp: WorklistSCP, world: World) -> None:
    await world.step(1)
    uid = generate_uid()
    assert (await n_create(scp.port, uid, create_attrs(world)))[0] == 0x0000
    assert (await n_set(scp.port, uid, final_attrs("DISCONTINUED")))[0] == 0x0000
    assert await step_status(world) == "discontinued"
    assert (await outbox(world, world.id("A1")))[-1]["data"]["status"] == "discontinued"


async def test_scu_without_instance_uid_gets_one(scp: WorklistSCP, world: World) -> None:
    await world.step(1)
    status, _ = await n_create(scp.port, None, create_attrs(world))
    assert status == 0x0000
    uid = await world.conn.fetchval("SELECT mpps_uid FROM scheduled_procedure_steps WHERE accession_number = $1",
                                    world.id("A1"))
    assert uid and await world.conn.fetchval(
        "SELECT status FROM performed_procedure_steps WHERE sop_instance_uid = $1", uid) == "IN PROGRESS"


async def test_annex_f_checks_refuse_with_the_right_status(scp: WorklistSCP, world: World) -> None:
    await world.step(1)
    port = scp.port
    assert (await n_create(port, generate_uid(), create_attrs(world, PerformedStationAETitle=None)))[0] == 0x0120
    assert (await n_create(port, generate_uid(), create_attrs(world, PerformedProcedureStepID="")))[0] == 0x0121
    assert (await n_create(port, generate_uid(), create_attrs(world, PatientID=None)))[0] == 0x0120  # Type 2
    status, rsp = await n_create(port, generate_uid(), create_attrs(world, PerformedProcedureStepStatus="COMPLETED"))
    assert status == 0x0106 and "IN PROGRESS" in rsp.ErrorComment
    assert (await n_create(port, generate_uid(), create_attrs(world, PerformedProcedureStepEndDate="20240101",
                                                             PerformedProcedureStepEndTime="1200")))[0] == 0x0106
    assert (await n_create(port, generate_uid(), create_attrs(world, PerformedProcedureStepStartDate="2024")))[0] \
        == 0x0106
    assert await step_status(world) == "scheduled"  # nothing of the refused requests stuck
    assert await outbox(world, world.id("A1")) == []

    uid = generate_uid()
    assert (await n_create(port, uid, create_attrs(world)))[0] == 0x0000
    assert (await n_create(port, uid, create_attrs(world)))[0] == 0x0111  # duplicate instance
    assert (await n_set(port, generate_uid(), final_attrs()))[0] == 0x0112  # no such instance
    change_modality = final_attrs()
    change_modality.Modality = "MR"
    assert (await n_set(port, uid, change_modality))[0] == 0x0106  # not settable
    assert (await n_set(port, uid, final_attrs("FINISHED")))[0] == 0x0106  # not a status
    assert (await n_set(port, uid, final_attrs("COMPLETED", with_end=False)))[0] == 0x0121  # final state needs end
    assert await step_status(world) == "in_progress"
    progress = Dataset()
    progress.SpecificCharacterSet = "ISO_IR 192"
    progress.CommentsOnThePerformedProcedureStep = "对比剂已注射"
    assert (await n_set(port, uid, progress))[0] == 0x0000  # IN PROGRESS -> IN PROGRESS: more attributes
    assert (await n_set(port, uid, final_attrs()))[0] == 0x0000
    assert await step_status(world) == "completed"


async def test_unscheduled_mpps_is_kept_without_events(scp: WorklistSCP, world: World) -> None:
    uid = generate_uid()
    attrs = create_attrs(world, n=99)
    assert (await n_create(scp.port, uid, attrs))[0] == 0x0000
    row = await world.conn.fetchrow("SELECT * FROM performed_procedure_steps WHERE sop_instance_uid = $1", uid)
    assert row["status"] == "IN PROGRESS" and list(row["step_ids"]) == []
    assert await outbox(world, world.id("A99")) == []
