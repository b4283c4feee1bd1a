"""Patients, possible duplicates and orders under /api/registration/... (thin: domain does the work)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from imaging_common.audit import client_ip
from imaging_common.auth import Principal, require_roles
from imaging_common.empi import store
from imaging_common.empi.identifiers import InvalidIdentifier, parse_id_type
from imaging_common.empi.matcher import Scorer
from imaging_common.empi.store import IncomingPerson
from imaging_common.events.types import ExamItem, SpecialConditions
from imaging_common.json_out import listing
from imaging_common.service import ServiceContext
from pydantic import BaseModel, ConfigDict, Field, field_validator

from registration.adapters import barcode_svg, hl7_status, schemas
from registration.adapters.deps import request_context
from registration.domain import orders as order_domain
from registration.domain import patients as patient_domain
from registration.domain.patients import Actor
from registration.settings import Settings

router = APIRouter()

DeskStaff = Annotated[Principal, Depends(require_roles("clerk", "nurse", "admin"))]
Readers = Annotated[Principal, Depends(require_roles(
    "clerk", "nurse", "technologist", "radiologist", "senior-radiologist", "clinician", "admin"))]
Orderers = Annotated[Principal, Depends(require_roles("clerk", "clinician", "admin"))]
Admins = Annotated[Principal, Depends(require_roles("admin"))]


def _scorer(ctx: ServiceContext[Settings]) -> Scorer:
    scorer = ctx.extras.get("empi_scorer")
    if scorer is None:
        scorer = ctx.extras["empi_scorer"] = patient_domain.scorer_for(ctx.settings)
    return scorer


def _actor(request: Request, user: Principal) -> Actor:
    return Actor(user.username, client_ip(request))


class IdentifierIn(BaseModel):
    type: str = Field("resident-id", examples=["resident-id", "passport", "hospital-card"])
    value: str = Field(min_length=1, max_length=64)

    @field_validator("type")
    @classmethod
    def _known_authority(cls, value: str) -> str:
        return parse_id_type(value).value  # ValueError -> 422 naming the field


class PatientIn(BaseModel):
    name: str = Field(min_length=1, max_length=128, examples=["张伟"])
    birth_date: date | None = None
    sex: Literal["M", "F", "O", "U"] | None = None
    phone: str | None = Field(None, max_length=32)
    address: str | None = Field(None, max_length=256)
    postcode: str | None = Field(None, max_length=16)
    identifiers: list[IdentifierIn] = []
    verified: bool = Field(False, description="the identity card was read at the desk")

    def incoming(self) -> IncomingPerson:
        return IncomingPerson(
            name=self.name, birth_date=self.birth_date, sex=self.sex, phone=self.phone, address=self.address,
            postcode=self.postcode, identifiers=[(i.type, i.value) for i in self.identifiers],
            source="verified" if self.verified else "registration",
        )


class RegisterIn(PatientIn):
    link_to: str | None = Field(None, description="EMPI id the clerk chose in the same-name panel")
    force_new: bool = Field(False, description="the clerk says: a different person, despite a likely match")
    confirm_changes: bool = Field(False, description="the clerk saw the old and new name/birth date/sex of the "
                                  "patient this links to and says they are right; otherwise such a change waits")


class VerificationIn(BaseModel):
    method: Literal["id-card-reader", "document-seen", "face", "verbal"]
    document_type: str | None = None
    document_number: str | None = Field(None, max_length=64)
    note: str | None = Field(None, max_length=500)


class ResolveIn(BaseModel):
    decision: Literal["merge", "distinct"]
    survivor: str | None = None


class MergeIn(BaseModel):
    survivor: str
    merged: str
    reason: str = Field(min_length=1, max_length=500)


class UnmergeIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class OrderText(BaseModel):
    """The free-text parts of an application form, the same for a new order and a change."""

    visit_number: str | None = None
    ward: str | None = None
    bed: str | None = None
    ordering_doctor: str | None = None
    ordering_doctor_id: str | None = None
    ordering_department: str | None = None
    clinical_diagnosis: str | None = None
    history: str | None = None
    purpose: str | None = None


PatientClass = Literal["outpatient", "inpatient", "emergency", "physical-exam"]
Priority = Literal["routine", "urgent", "stat"]


class OrderIn(OrderText):
    empi_id: str
    patient_class: PatientClass = "outpatient"
    items: list[ExamItem] = Field(min_length=1)
    special: SpecialConditions = SpecialConditions()
    priority: Priority = "routine"


def _bad_identifier(exc: InvalidIdentifier) -> HTTPException:
    return HTTPException(422, f"identifier refused: {exc}")


def _not_found(exc: store.EmpiError) -> HTTPException:
    return HTTPException(404 if isinstance(exc, store.PersonNotFound) or "no " in str(exc) else 409, str(exc))


@contextlib.asynccontextmanager
async def _patient_conn(request: Request, *, identifiers: bool = False) -> AsyncIterator[asyncpg.Connection]:
    """A connection for a route about a patient or their orders: an EMPI refusal answers 404 (unknown) or
    409, and with `identifiers` a malformed identifier answers as `_bad_identifier` does."""
    try:
        async with request_context(request).pool.acquire() as conn:
            yield conn
    except InvalidIdentifier as exc:
        if not identifiers:
            raise
        raise _bad_identifier(exc) from None
    except store.EmpiError as exc:
        raise _not_found(exc) from None


@router.post("/patients", tags=["patients"], status_code=201, response_model=schemas.Registered,
             summary="Register a patient: linked to the person it matches, or a new person (+ review items)")
async def register_patient(body: RegisterIn, request: Request, user: DeskStaff) -> dict[str, Any]:
    ctx = request_context(request)
    async with _patient_conn(request, identifiers=True) as conn:
        res = await patient_domain.register(
            conn, body.incoming(), actor=_actor(request, user), scorer=_scorer(ctx), link_to=body.link_to,
            force_new=body.force_new, patient_id_prefix=ctx.settings.patient_id_prefix,
            confirm=body.confirm_changes)
    return {"outcome": res.outcome, "patient": patient_domain.detail(res.person), "review_ids": res.review_ids,
            "changed": res.changed, "pending": {"id": res.source_record_id, "changes": res.pending} if res.pending
            else None}


@router.post("/patients/match", tags=["patients"], response_model=schemas.MatchList,
             summary="Who this might be, before saving (same-name panel); writes nothing")
async def match_patient(body: PatientIn, request: Request, user: DeskStaff) -> dict[str, Any]:
    ctx = request_context(request)
    async with ctx.pool.acquire() as conn:
        data = await patient_domain.match_preview(conn, body.incoming(), scorer=_scorer(ctx),
                                                  actor=_actor(request, user))
    return listing(data)


@router.get("/patients", tags=["patients"], response_model=schemas.PatientList,
            summary="Search by name, pinyin, ID/card number or phone (masked IDs)")
async def search_patients(request: Request, user: Readers,
                          q: Annotated[str, Query(min_length=1, max_length=64)],
                          limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict[str, Any]:
    ctx = request_context(request)
    async with ctx.pool.acquire() as conn:
        found = await patient_domain.search(conn, q, actor=_actor(request, user), limit=limit)
    return {"data": [patient_domain.summary(p) for p in found], "count": len(found)}


class SearchIn(BaseModel):
    q: str = Field(min_length=1, max_length=64)
    limit: int = Field(20, ge=1, le=100)


@router.post("/patients/search", tags=["patients"], response_model=schemas.PatientList,
             summary="The same search with the query in the body, so ID numbers stay out of URLs and proxy logs")
async def search_patients_post(body: SearchIn, request: Request, user: Readers) -> dict[str, Any]:
    return await search_patients(request, user, body.q, body.limit)


@router.get("/patients/{empi_id}", tags=["patients"], response_model=schemas.PatientDetail,
            summary="One patient (by EMPI id or PatientID); audited")
async def get_patient(empi_id: str, request: Request, user: Readers) -> dict[str, Any]:
    async with _patient_conn(request) as conn:
        person = await patient_domain.read(conn, empi_id, actor=_actor(request, user))
    return patient_domain.detail(person)


@router.put("/patients/{empi_id}", tags=["patients"], response_model=schemas.PatientChanged,
            summary="Correct a patient's data (a new source record)")
async def update_patient(empi_id: str, body: PatientIn, request: Request, user: DeskStaff) -> dict[str, Any]:
    async with _patient_conn(request, identifiers=True) as conn:
        person, changed = await patient_domain.update(conn, empi_id, body.incoming(), actor=_actor(request, user))
    return {"patient": patient_domain.detail(person), "changed": changed}


@router.get("/pending-changes", tags=["patients"], response_model=schemas.PendingChangeList,
            summary="Changes of a patient's name, birth date or sex waiting for the desk (old vs new)")
async def list_pending_changes(request: Request, user: DeskStaff,
                               limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
    ctx = request_context(request)
    async with ctx.pool.acquire() as conn, conn.transaction():
        data = await patient_domain.pending_changes(conn, actor=_actor(request, user), limit=limit)
    return listing(data)


@router.post("/pending-changes/{change_id}/{decision}", tags=["patients"], response_model=schemas.PatientChanged,
             summary="Confirm (patient.updated follows) or reject a pending change of who a patient is")
async def decide_pending_change(change_id: str, decision: Literal["confirm", "reject"], request: Request,
                                user: DeskStaff) -> dict[str, Any]:
    ctx = request_context(request)
    try:
        async with ctx.pool.acquire() as conn:
            person, changed = await patient_domain.decide_change(conn, change_id, accept=decision == "confirm",
                                                                 actor=_actor(request, user))
    except (store.EmpiError, asyncpg.DataError) as exc:
        raise HTTPException(404, str(exc)) from None
    return {"patient": patient_domain.detail(person), "changed": changed}


@router.get("/patients/{empi_id}/history", tags=["patients"], response_model=schemas.HistoryList,
            summary="Identity decisions about this person")
async def patient_history(empi_id: str, request: Request, user: DeskStaff) -> dict[str, Any]:
    async with _patient_conn(request) as conn:
        person = await patient_domain.read(conn, empi_id, actor=_actor(request, user))
        items = await store.history(conn, person.empi_id)
    return listing(items)


@router.post("/patients/{empi_id}/verifications", tags=["patients"], status_code=201,
             response_model=schemas.Verification,
             summary="Record an identity check (ID card read, document seen)")
async def verify_patient(empi_id: str, body: VerificationIn, request: Request, user: DeskStaff) -> dict[str, Any]:
    async with _patient_conn(request, identifiers=True) as conn:
        return await patient_domain.verify_identity(
            conn, empi_id, method=body.method, document_type=body.document_type,
            document_number=body.document_number, note=body.note, actor=_actor(request, user))


@router.get("/reviews", tags=["duplicates"], response_model=schemas.ReviewList,
            summary="Possible duplicates waiting for a decision")
async def list_reviews(request: Request, user: DeskStaff,
                       limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
    ctx = request_context(request)
    async with ctx.pool.acquire() as conn:
        data = await patient_domain.open_reviews(conn, actor=_actor(request, user), limit=limit)
    return listing(data)


@router.post("/reviews/{review_id}/resolve", tags=["duplicates"], response_model=schemas.ReviewResolved,
             summary="Merge the two, or mark them distinct")
async def resolve_review(review_id: str, body: ResolveIn, request: Request, user: DeskStaff) -> dict[str, Any]:
    ctx = request_context(request)
    try:
        async with ctx.pool.acquire() as conn:
            return await patient_domain.resolve_review(conn, review_id, body.decision, actor=_actor(request, user),
                                                       survivor=body.survivor)
    except (store.EmpiError, asyncpg.DataError) as exc:
        raise HTTPException(409 if "already" in str(exc) else 404, str(exc)) from None


@router.post("/patients/merge", tags=["duplicates"], response_model=schemas.Merged, summary="Merge two persons (admin)")
async def merge_patients(body: MergeIn, request: Request, user: Admins) -> dict[str, Any]:
    async with _patient_conn(request) as conn:
        person = await patient_domain.merge(conn, body.survivor, body.merged, actor=_actor(request, user),
                                            reason=body.reason)
    return {"survivor": patient_domain.detail(person)}


@router.post("/patients/{empi_id}/unmerge", tags=["duplicates"], response_model=schemas.Unmerged,
             summary="Undo a merge (admin)")
async def unmerge_patient(empi_id: str, body: UnmergeIn, request: Request, user: Admins) -> dict[str, Any]:
    async with _patient_conn(request) as conn:
        kept, restored = await patient_domain.unmerge(conn, empi_id, actor=_actor(request, user),
                                                      reason=body.reason)
    return {"survivor": patient_domain.detail(kept), "restored": patient_domain.detail(restored)}


@router.post("/orders", tags=["orders"], status_code=201, response_model=schemas.Order,
             summary="Create an exam order (electronic application form)")
async def create_order(body: OrderIn, request: Request, user: Orderers) -> dict[str, Any]:
    ctx = request_context(request)
    form = body.model_dump(exclude={"empi_id", "items", "special", "patient_class", "priority"})
    async with _patient_conn(request) as conn:
        return await order_domain.create_order(
            conn, empi_id=body.empi_id, items=body.items, special=body.special, priority=body.priority,
            patient_class=body.patient_class, actor=_actor(request, user),
            accession_prefix=ctx.settings.accession_prefix, **form)


@router.get("/orders", tags=["orders"], response_model=schemas.OrderList,
            summary="Orders, newest first, optionally of one patient")
async def list_orders(request: Request, user: Readers, empi_id: str | None = None,
                      limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
    async with _patient_conn(request) as conn:
        data = await order_domain.list_orders(conn, empi_id=empi_id, actor=_actor(request, user), limit=limit)
    return listing(data)


class OrderCancel(BaseModel):
    reason: str = Field(min_length=1, max_length=200, description="why, e.g. 患者取消检查 or 重复开单")


@router.post("/orders/{key}/cancel", tags=["orders"], response_model=schemas.Order,
             summary="Cancel an order: worklist, appointment, queue follow")
async def cancel_order(key: str, body: OrderCancel, request: Request, user: Orderers) -> dict[str, Any]:
    async with _patient_conn(request) as conn:
        order_id = await order_domain.order_id_of(conn, key)
        if order_id is None:
            raise store.EmpiError(f"no order {key}")
        order, _changed = await order_domain.cancel_order(conn, order_id=order_id, reason=body.reason,
                                                          actor=_actor(request, user), render=hl7_status.render)
    return order


class OrderChange(OrderText):
    """Only the fields sent change; the patient, accession number and Study UID never do."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=200, description="why, e.g. 临床医生更改检查项目")
    items: list[ExamItem] | None = Field(None, min_length=1)
    priority: Priority | None = None
    requested_at: datetime | None = None
    patient_class: PatientClass | None = None
    special: SpecialConditions | None = None


@router.post("/orders/{key}/change", tags=["orders"], response_model=schemas.OrderChanged,
             summary="Change an order's items, time, priority or department: worklist, appointment, queue follow")
async def change_order(key: str, body: OrderChange, request: Request, user: Orderers) -> dict[str, Any]:
    changes = body.model_dump(exclude={"reason"}, exclude_unset=True)
    if not changes:
        raise HTTPException(422, "nothing to change: send at least one field besides the reason")
    try:
        async with _patient_conn(request) as conn:
            order_id = await order_domain.order_id_of(conn, key)
            if order_id is None:
                raise store.EmpiError(f"no order {key}")
            order, changed = await order_domain.change_order(conn, order_id=order_id, changes=changes,
                                                             reason=body.reason, actor=_actor(request, user))
    except order_domain.OrderClosed as exc:
        raise HTTPException(409, str(exc)) from None
    return {**order, "changed": changed}


@router.get("/orders/{key}", tags=["orders"], response_model=schemas.Order,
            summary="One order by id or accession number")
async def get_order(key: str, request: Request, user: Readers) -> dict[str, Any]:
    async with _patient_conn(request) as conn:
        return await order_domain.get_order(conn, key, actor=_actor(request, user))


@router.get("/orders/{key}/barcode.svg", tags=["orders"], response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}}}},
            summary="The application form's barcode: Code 128 of the order's accession number")
async def order_barcode(key: str, request: Request, user: Readers) -> Response:
    async with _patient_conn(request) as conn:
        order = await order_domain.get_order(conn, key, actor=_actor(request, user))
    return Response(barcode_svg.code128_svg(order["accession_number"]), media_type="image/svg+xml",
                    headers={"Cache-Control": "no-store"})
