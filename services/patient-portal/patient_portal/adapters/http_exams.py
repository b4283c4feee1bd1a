"""The signed-in patient's exams: status from booking to report, and the report's impression.
Every read is audited, per patient whose data it shows."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Response
from imaging_common import audit
from imaging_common.json_out import listing

from patient_portal.adapters import report_pdf, schemas
from patient_portal.adapters.deps import NO_STORE, ClientIp, Ctx, Patient, no_store
from patient_portal.domain import exams

router = APIRouter(prefix="/exams", tags=["patient exams"], dependencies=[Depends(no_store)])


@router.get("", response_model=schemas.Exams, summary="My exams, newest first")
async def my_exams(patient: Patient, ctx: Ctx, ip: ClientIp) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn, conn.transaction():
        empi_ids = await exams.patients_with_phone(conn, patient.phone)
        rows = await exams.exams_of(conn, empi_ids)
        for empi_id in empi_ids:
            await audit.record_read(conn, actor=patient.actor, entity="exam", patient_id=empi_id, source_ip=ip,
                                    detail={"via": "patient-portal", "list": True})
    return listing(rows)


@router.get("/{accession_number}", response_model=schemas.ExamDetail, summary="One of my exams with its report")
async def my_exam(accession_number: str, patient: Patient, ctx: Ctx, ip: ClientIp) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn, conn.transaction():
        empi_ids = await exams.patients_with_phone(conn, patient.phone)
        row = await exams.exam_of(conn, empi_ids, accession_number)
        if row is None:  # not theirs and not there answer alike
            raise HTTPException(404, f"no exam {accession_number}")
        await audit.record_read(conn, actor=patient.actor, entity="exam", entity_id=accession_number,
                                patient_id=row["empi_id"], source_ip=ip, detail={"via": "patient-portal"})
    return row


@router.get("/{accession_number}/report.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}, "description": "the final report as a PDF"}},
            summary="My final report as a PDF (hospital header, signature, verification QR)")
async def my_report_pdf(accession_number: str, patient: Patient, ctx: Ctx, ip: ClientIp) -> Response:
    s = ctx.settings
    async with ctx.pool.acquire() as conn, conn.transaction():
        empi_ids = await exams.patients_with_phone(conn, patient.phone)
        row = await exams.exam_of(conn, empi_ids, accession_number)
        if row is None or row["status"] != "reported":
            raise HTTPException(404, f"no final report for exam {accession_number}")
        await audit.record_read(conn, actor=patient.actor, entity="report", entity_id=row["report_id"],
                                patient_id=row["empi_id"], source_ip=ip, detail={"via": "patient-portal", "as": "pdf"})
    verify = (f"{s.patient_public_base_url.rstrip('/')}/api/patient/reports/{row['report_id']}/verify"
              f"?version={row['report_version']}")
    pdf = await report_pdf.render_pdf(row, hospital=s.patient_hospital_name, verify_url=verify, tz=s.patient_timezone)
    return Response(pdf, media_type="application/pdf", headers={
        **NO_STORE, "Content-Disposition": f'inline; filename="report-{accession_number}.pdf"'})
