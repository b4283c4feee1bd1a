"""HTTP API `/api/worklist/...`: list and search steps, bulk import from a RIS/HIS, MPPS records.

Every route declares its roles; every read or change of patient data is audited (changes in
the same transaction as the change).
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from imaging_common import audit
from imaging_common.auth import Principal, require_roles
from imaging_common.dicom import combined_datetime_range, person_name
from pydantic import BaseModel, Field, field_validator

from worklist.adapters import live
from worklist.adapters.deps import request_context
from worklist.adapters.dicom.mwl import _sps_status
from worklist.domain import mpps, steps
from worklist.domain import query as step_query

router = APIRouter(tags=["worklist"])

Staff = Annotated[Principal, Depends(require_roles("technologist", "nurse", "radiologist", "admin"))]
Importer = Annotated[Principal, Depends(require_roles("clerk", "admin", "it-ops"))]
Editor = Annotated[Principal, Depends(require_roles("technologist", "clerk", "admin"))]

MAX_IMPORT = 5000
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_AE = re.compile(r"^[^\\\x00-\x1f]{0,16}$")


# ---- models --------------------------------------------------------------------------------


class StepPublic(BaseModel):
    id: int
    sps_id: str
    accession_number: str
    requested_procedure_id: str
    study_instance_uid: str
    patient_id: str
    patient_name: str
    birth_date: date | None
    sex: str
    modality: str
    station_ae_title: str
    station_name: str
    location: str
    room_id: str | None
    start_at: datetime | None
    end_at: datetime | None
    description: str
    protocol_code: str
    priority: str
    medical_alerts: str
    status: str
    sps_status: str
    source: str
    arrived_at: datetime | None
    mpps_uid: str | None
    started_at: datetime | None
    completed_at: datetime | None
    order_cancelled_at: datetime | None = None  # the order was cancelled while this step was in progress

    @classmethod
    def of(cls, row: Any) -> StepPublic:
        values = {k: row[k] for k in cls.model_fields if k != "sps_status"}
        return cls(**values, sps_status=_sps_status(row))


class PerformedStep(BaseModel):
    """An MPPS as received: its row, the N-CREATE/N-SET attributes as DICOM JSON."""

    sop_instance_uid: str
    status: str
    calling_ae_title: str
    station_ae_title: str
    modality: str
    pps_id: str
    accession_numbers: list[str]
    study_instance_uids: list[str]
    step_ids: list[int]
    attributes: dict[str, Any]
    started_at: datetime | None
    ended_at: datetime | None
    created_at: datetime
    updated_at: datetime


class StepList(BaseModel):
    data: list[StepPublic]
    count: int


class StepIn(BaseModel):
    """One scheduled procedure step from an external RIS/HIS. Times without a zone are the
    center's wall time (IMAGING_WORKLIST_TIMEZONE)."""

    accession_number: str = Field(min_length=1, max_length=16, examples=["A20240001"])
    protocol_code: str = Field("", max_length=16, description="exam item code; one step per accession and code")
    patient_id: str = Field(min_length=1, max_length=64)
    patient_name: str = Field(min_length=1, max_length=194, examples=["ZHANG^SAN=张^三", "张三"],
                              description="DICOM PN value, or a plain name")
    patient_name_latin: str | None = Field(None, max_length=64, description="pinyin, put in the first group")
    issuer_of_patient_id: str = Field("", max_length=64)
    birth_date: date | None = None
    sex: Literal["M", "F", "O", ""] = ""
    modality: str = Field(min_length=1, max_length=16, examples=["CT"])
    station_ae_title: str = Field("", max_length=16)
    station_name: str = Field("", max_length=16)
    location: str = Field("", max_length=16)
    room_id: str | None = Field(None, max_length=64)
    start: datetime
    end: datetime | None = None
    description: str = Field("", max_length=64)
    requested_procedure_id: str = Field("", max_length=16)
    requested_procedure_description: str = Field("", max_length=64)
    study_instance_uid: str = Field("", max_length=64)
    sps_id: str | None = Field(None, min_length=1, max_length=16)
    performing_physician: str = Field("", max_length=194)
    referring_physician: str = Field("", max_length=194)
    priority: Literal["routine", "urgent", "stat"] = "routine"
    admission_id: str = Field("", max_length=64)
    reason: str = Field("", max_length=64)
    medical_alerts: str = Field("", max_length=64)

    @field_validator("study_instance_uid")
    @classmethod
    def _uid(cls, v: str) -> str:
        if v and not _UID.fullmatch(v):
            raise ValueError("not a DICOM UID (digits and dots)")
        return v

    @field_validator("station_ae_title", "modality")
    @classmethod
    def _ae(cls, v: str) -> str:
        if not _AE.fullmatch(v) or v != v.strip():
            raise ValueError("at most 16 characters, no backslash or control characters, no padding")
        return v

    def to_data(self, tz: Any) -> steps.StepData:
        name = self.patient_name
        if self.patient_name_latin and "=" not in name and not name.isascii():
            name = person_name(self.patient_name_latin, name)
        return steps.StepData(
            accession_number=self.accession_number, protocol_code=self.protocol_code, patient_id=self.patient_id,
            patient_name=name, issuer_of_patient_id=self.issuer_of_patient_id, birth_date=self.birth_date,
            sex=self.sex, modality=self.modality, station_ae_title=self.station_ae_title,
            station_name=self.station_name, location=self.location, room_id=self.room_id,
            start_at=steps.local_wall_time(self.start, tz), end_at=steps.local_wall_time(self.end, tz),
            description=self.description, requested_procedure_id=self.requested_procedure_id,
            requested_procedure_description=self.requested_procedure_description or self.description,
            study_instance_uid=self.study_instance_uid, sps_id=self.sps_id,
            performing_physician=self.performing_physician, referring_physician=self.referring_physician,
            priority=self.priority, admission_id=self.admission_id, reason=self.reason,
            medical_alerts=self.medical_alerts, source="import",
        )


class ImportRequest(BaseModel):
    items: list[StepIn] = Field(min_length=1, max_length=MAX_IMPORT)


class Imported(BaseModel):
    id: int
    sps_id: str
    accession_number: str
    protocol_code: str
    created: bool


class ImportResult(BaseModel):
    data: list[Imported]
    count: int
    created: int
    updated: int


class RoomSummary(BaseModel):
    room_id: str | None
    location: str
    station_ae_title: str
    scheduled: int
    arrived: int
    in_progress: int
    completed: int
    discontinued: int


def _refuse_last_day(day: date) -> None:
    """A day is searched up to the next midnight, which 9999-12-31 does not have."""
    if day >= date.max:
        raise HTTPException(422, f"date out of range: {day.isoformat()}")


# ---- routes --------------------------------------------------------------------------------


@router.get("/items", response_model=StepList, summary="Search scheduled procedure steps")
async def list_items(
    request: Request, user: Staff,
    day: Annotated[date | None, Query(alias="date", description="the center's calendar day, e.g. 2024-05-01")] = None,
    room_id: str | None = None, station_ae_title: str | None = None, modality: str | None = None,
    patient_id: str | None = None, accession_number: str | None = None,
    patient_name: Annotated[str | None, Query(description="DICOM matching: wildcards * and ?")] = None,
    status: Annotated[list[Literal["scheduled", "in_progress", "completed", "discontinued", "cancelled"]] | None,
                      Query()] = None,
    limit: Annotated[int, Query(ge=1, le=2000)] = 500,
) -> StepList:
    ctx = request_context(request)
    q = step_query.StepQuery(room_id=room_id, station_ae_title=station_ae_title, modality=modality,
                             patient_id=patient_id, accession_number=accession_number, patient_name=patient_name,
                             statuses=list(status) if status else ["scheduled", "in_progress", "completed",
                                                                   "discontinued"])
    if day is not None:
        _refuse_last_day(day)
        # isoformat, not strftime("%Y"): a DA value has 8 digits even before the year 1000.
        q.start = combined_datetime_range(day.isoformat().replace("-", ""), None)
    async with ctx.pool.acquire() as conn:
        rows = await step_query.find_steps(conn, q, limit=limit)
        await audit.record_read(conn, **audit.request_context(request, user), entity="worklist",
                                detail={"route": "GET /items", "matches": len(rows),
                                        "filters": {k: v for k, v in request.query_params.items()}})
    data = [StepPublic.of(r) for r in rows]
    return StepList(data=data, count=len(data))


@router.get("/changes", response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}}},
            summary="Says when the worklist changed (text/event-stream)",
            description="`event: changed` after any change of the scheduled steps, for the page to reload its list; "
                        "no patient data. The stream ends after IMAGING_WORKLIST_STREAM_SECONDS (two minutes): "
                        "open it again.")
async def changes(request: Request, user: Staff) -> StreamingResponse:
    ctx = request_context(request)
    stream = live.stream(ctx.extras["change_feed"], seconds=ctx.settings.worklist_stream_seconds)
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/items/{item_id}", response_model=StepPublic, summary="One scheduled procedure step")
async def get_item(item_id: int, request: Request, user: Staff) -> StepPublic:
    ctx = request_context(request)
    async with ctx.pool.acquire() as conn:
        row = await steps.step_by_id(conn, item_id)
        if row is None:
            raise HTTPException(404, f"no worklist item {item_id}")
        await audit.record_read(conn, **audit.request_context(request, user), entity="worklist-item",
                                entity_id=str(item_id), patient_id=row["patient_id"])
    return StepPublic.of(row)


@router.post("/items", response_model=ImportResult, status_code=200,
             summary="Bulk import of scheduled procedure steps (external RIS/HIS); all or none")
async def import_items(body: ImportRequest, request: Request, user: Importer) -> ImportResult:
    ctx = request_context(request)
    tz = ctx.settings.tz
    keys = [(i.accession_number, i.protocol_code) for i in body.items]
    if len(set(keys)) != len(keys):
        raise HTTPException(422, "the same accession number and protocol code appear twice in one import")
    data = [i.to_data(tz) for i in body.items]
    async with ctx.pool.acquire() as conn, conn.transaction():
        try:
            results = await steps.import_steps(conn, data)
        except Exception as exc:  # a conflicting SPS ID, say: nothing of this import is kept
            if type(exc).__name__ == "UniqueViolationError":
                raise HTTPException(409, f"conflicts with a stored step: {exc}") from None
            raise
        await audit.record(conn, **audit.request_context(request, user), action="create", entity="worklist-item",
                           detail={"route": "POST /items", "count": len(results),
                                   "accession_numbers": sorted({k[0] for k in keys})[:200]})
    out = [Imported(id=r[0], sps_id=r[1], accession_number=k[0], protocol_code=k[1], created=r[2])
           for r, k in zip(results, keys, strict=True)]
    created = sum(1 for r in out if r.created)
    return ImportResult(data=out, count=len(out), created=created, updated=len(out) - created)


@router.post("/items/{item_id}/cancel", response_model=StepPublic, summary="Take a scheduled step off the worklist")
async def cancel_item(item_id: int, request: Request, user: Editor) -> StepPublic:
    ctx = request_context(request)
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await steps.step_by_id(conn, item_id, lock=True)
        if row is None:
            raise HTTPException(404, f"no worklist item {item_id}")
        if not await steps.cancel_step(conn, item_id):
            raise HTTPException(409, f"item {item_id} is {row['status']}; only a scheduled step can be cancelled")
        await audit.record(conn, **audit.request_context(request, user), action="update", entity="worklist-item",
                           entity_id=str(item_id), patient_id=row["patient_id"], detail={"status": "cancelled"})
        row = await steps.step_by_id(conn, item_id)
    return StepPublic.of(row)


@router.get("/rooms", response_model=list[RoomSummary], summary="Rooms with steps on a day, and their counts")
async def rooms(request: Request, user: Staff,
                day: Annotated[date | None, Query(alias="date")] = None) -> list[RoomSummary]:
    ctx = request_context(request)
    tz = ctx.settings.tz
    day = day or datetime.now(tz).date()
    _refuse_last_day(day)
    start = datetime.combine(day, datetime.min.time())
    async with ctx.pool.acquire() as conn:
        rows = await steps.room_counts(conn, start, start + timedelta(days=1))
    return [RoomSummary(**dict(r)) for r in rows]


@router.get("/mpps/{uid}", summary="A Modality Performed Procedure Step as received (DICOM JSON)")
async def get_mpps(uid: str, request: Request, user: Staff) -> PerformedStep:
    ctx = request_context(request)
    async with ctx.pool.acquire() as conn:
        row = await mpps.performed_step(conn, uid)
        if row is None:
            raise HTTPException(404, f"no MPPS {uid}")
        await audit.record_read(conn, **audit.request_context(request, user), entity="mpps",
                                entity_id=uid, detail={"accession_numbers": list(row["accession_numbers"])})
    body = dict(row)
    body["attributes"] = json.loads(body["attributes"]) if isinstance(body["attributes"], str) else body["attributes"]
    body["step_ids"] = list(body["step_ids"])
    return PerformedStep(**body)


