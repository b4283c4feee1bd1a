"""Studies come from other services' events; films follow patient updates and merges."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from imaging_common import events
from imaging_common.events import CloudEvent, dispatch
from imaging_common.events.types import ExamCompleted, OrderCreated, PatientMerged, PatientRef, PatientUpdated
from imaging_testing import print_kit as tk
from print_scp.adapters.events import HANDLERS


def _patient(tag: str, name: str = "赵六") -> PatientRef:
    return PatientRef(empi_id=f"E-{tag}", patient_id=f"P{tag}", name=name, phone="13700007777")


async def test_order_created_over_rabbitmq_makes_the_study_known(print_app) -> None:
    tag = uuid.uuid4().hex[:8]
    uid = f"1.2.826.0.1.3680043.2.461.{int(tag, 16)}"
    order = OrderCreated(order_id=f"O-{tag}", accession_number=f"A-{tag}", requested_procedure_id="RP1",
                         study_instance_uid=uid, patient=_patient(tag),
                         items=[{"code": "DX-CHEST", "name": "胸部正位", "modality": "DX"}],
                         ordered_at=datetime.now(UTC))
    # Published through this service's own outbox: the relay sends it to the exchange, the broker
    # routes it to print_scp's queue (it subscribes to order.created), the consumer applies it.
    async with print_app.ctx.pool.acquire() as conn, conn.transaction():
        await events.publish(conn, order, source="/imaging/registration", subject=order.accession_number)
    for _ in range(300):
        async with print_app.ctx.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT * FROM studies WHERE study_instance_uid = $1", uid)
        if row is not None:
            break
        await asyncio.sleep(0.05)
    assert row is not None and row["accession_number"] == f"A-{tag}" and row["patient_id"] == f"P{tag}"


async def test_exam_completed_patient_updated_and_merged_follow_films(print_app, printer) -> None:
    tag, other = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    uid = f"1.2.826.0.1.3680043.2.461.{int(tag, 16)}"
    done = ExamCompleted(accession_number=f"A-{tag}", study_instance_uid=uid, patient=_patient(tag),
                         mpps_uid="1.2.3", station_ae_title="CT1", modality="CT", completed_at=datetime.now(UTC))
    async with print_app.ctx.pool.acquire() as conn, conn.transaction():
        await dispatch(HANDLERS, conn, CloudEvent.from_data(done, source="/imaging/worklist"))
    film = await printer([tk.to_item(tk.anatomy(64, 13))], study_uid=uid)
    assert film["match_status"] == "matched" and film["patient_name"] == "赵六"
    renamed = PatientUpdated(patient=_patient(tag, name="赵六一"), changed=["name"])
    async with print_app.ctx.pool.acquire() as conn, conn.transaction():
        await dispatch(HANDLERS, conn, CloudEvent.from_data(renamed, source="/imaging/registration"))
    merged = PatientMerged(surviving=_patient(other, name="赵六一"), merged_empi_ids=[f"E-{tag}"],
                           merged_patient_ids=[f"P{tag}"])
    async with print_app.ctx.pool.acquire() as conn, conn.transaction():
        await dispatch(HANDLERS, conn, CloudEvent.from_data(merged, source="/imaging/registration"))
        row = await conn.fetchrow("SELECT empi_id, patient_id, patient_name FROM films WHERE id = $1", film["id"])
        study = await conn.fetchrow("SELECT empi_id, status FROM studies WHERE study_instance_uid = $1", uid)
    assert dict(row) == {"empi_id": f"E-{other}", "patient_id": f"P{other}", "patient_name": "赵六一"}
    assert study["empi_id"] == f"E-{other}" and study["status"] == "completed"


async def test_an_exam_under_a_study_uid_of_its_own_stays_the_orders_study(print_app) -> None:
    """A modality that made its own Study UID for an ordered accession: the exam is applied to the
    accession's study (the order's UID), never refused over and over into the dead-letter queue."""
    tag = uuid.uuid4().hex[:8]
    uid, own = f"1.2.826.0.1.3680043.2.461.{int(tag, 16)}", f"1.2.826.0.1.3680043.2.462.{int(tag, 16)}"
    order = OrderCreated(order_id=f"O-{tag}", accession_number=f"A-{tag}", requested_procedure_id="RP1",
                         study_instance_uid=uid, patient=_patient(tag),
                         items=[{"code": "CT-CHEST", "name": "胸部CT平扫", "modality": "CT"}],
                         ordered_at=datetime.now(UTC))
    done = ExamCompleted(accession_number=f"A-{tag}", study_instance_uid=own, patient=_patient(tag),
                         mpps_uid="1.2.3", station_ae_title="CT1", modality="CT", completed_at=datetime.now(UTC))
    async with print_app.ctx.pool.acquire() as conn, conn.transaction():
        await dispatch(HANDLERS, conn, CloudEvent.from_data(order, source="/imaging/registration"))
        await dispatch(HANDLERS, conn, CloudEvent.from_data(done, source="/imaging/worklist"))
        rows = await conn.fetch("SELECT study_instance_uid, status FROM studies WHERE accession_number = $1",
                                f"A-{tag}")
    assert [tuple(r) for r in rows] == [(uid, "completed")]
