"""Event handlers: orders tell us who ordered (the recipient); critical.raised starts the loop; changed
orders re-route open values and values follow their order's and their patient's identity
(domain/follow.py). Each runs in the transaction that records the event in the inbox, after the
consumer has checked the event's per-subject versions (an older snapshot never reaches us)."""

from __future__ import annotations

from typing import Any

import asyncpg
from imaging_common.events import CloudEvent, Handlers, data_only
from imaging_common.events.types import (
    CriticalRaised,
    OrderChanged,
    OrderCreated,
    PatientMerged,
    PatientUpdated,
    ReportAmended,
)
from imaging_common.service import handler_settings

from critical_values.domain import follow, lifecycle
from critical_values.domain.lifecycle import Defaults, NewCritical
from critical_values.settings import Settings


async def on_patient_updated(conn: asyncpg.Connection, data: PatientUpdated, event: CloudEvent) -> None:
    await follow.apply_patient_updated(conn, data.patient)


async def on_patient_merged(conn: asyncpg.Connection, data: PatientMerged, event: CloudEvent) -> None:
    await follow.apply_patient_merged(conn, data.surviving, data.merged_empi_ids)


async def on_critical_raised(conn: asyncpg.Connection, raised: CriticalRaised, event: CloudEvent) -> None:
    extra: dict[str, Any] = raised.model_extra or {}
    new = NewCritical(
        critical_id=raised.critical_id, accession_number=raised.accession_number,
        patient=await follow.patient_for_value(conn, raised.accession_number, raised.patient),
        finding=raised.finding, raised_by=raised.raised_by,
        raised_at=raised.raised_at, source=raised.source, item_code=raised.item_code, modality=raised.modality,
        report_id=raised.report_id, ordering_doctor_id=raised.ordering_doctor_id,
        ordering_department=raised.ordering_department, ward=raised.ward,
        ai_model=raised.raised_by[3:] if raised.raised_by.startswith("ai:") else None,
        # Reporting says so when the finding was already confirmed by a senior doctor.
        raised_by_senior=bool(extra.get("confirmed_by_senior")), source_strict=False,
        trusted_time=True)  # reporting's own clock, through the outbox: its raised_at is the record if plausible
    await lifecycle.raise_critical(conn, new, defaults=Defaults.of(handler_settings(Settings)))


async def on_report_amended(conn: asyncpg.Connection, amended: ReportAmended, event: CloudEvent) -> None:
    """A corrected or amended report: noted on the timeline of the critical values raised from it,
    so whoever reviews them sees the finding may have changed (the value itself stays as judged)."""
    rows = await conn.fetch("SELECT critical_id FROM critical_value WHERE report_id = $1 OR "
                            "(report_id IS NULL AND accession_number = $2)", amended.report_id,
                            amended.accession_number)
    for row in rows:
        await lifecycle.log_action(conn, row["critical_id"], actor=amended.signed_by, action="report-amended",
                                   detail={"report_id": amended.report_id, "version": amended.version,
                                           "kind": amended.kind, "reason": amended.reason})


HANDLERS: Handlers = {
    # order.created and order.changed alike: the whole order, upserted.
    OrderCreated: data_only(follow.apply_order),
    OrderChanged: data_only(follow.apply_order),  # an OrderCreated too: the whole order
    CriticalRaised: on_critical_raised,
    ReportAmended: on_report_amended,
    PatientUpdated: on_patient_updated,
    PatientMerged: on_patient_merged,
}
