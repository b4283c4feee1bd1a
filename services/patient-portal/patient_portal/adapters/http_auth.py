"""Patients sign in: a one-time code by SMS to the phone registered with their exams, then a short
session. Public routes, held by limits per phone and per client address; every outcome audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, HTTPException, Response
from imaging_common import audit
from imaging_common.empi.identifiers import mask_phone
from pydantic import BaseModel, Field

from patient_portal.adapters import schemas
from patient_portal.adapters.deps import ClientIp, Ctx, Patient, Sessions, no_store
from patient_portal.adapters.patient_auth import Held, SigninLimits, token_secret
from patient_portal.adapters.sms import SmsFailed, SmsProvider
from patient_portal.domain import exams, phones, signin

router = APIRouter(prefix="/auth", tags=["patient sign-in"], dependencies=[Depends(no_store)])
CODE_TEXT = "{signature}您的影像检查查询验证码为 {code}，{minutes}分钟内有效。如非本人操作请忽略，切勿告诉他人。"


class CodeRequest(BaseModel):
    phone: str = Field(max_length=32, examples=["13800138000"])


class SessionRequest(BaseModel):
    phone: str = Field(max_length=32)
    code: str = Field(min_length=4, max_length=8, examples=["123456"])


def _phone(raw: str) -> str:
    phone = phones.normalize(raw)
    if phone is None:
        raise HTTPException(422, "not a mobile phone number")
    return phone


def _held(held: Held) -> HTTPException:
    return HTTPException(429, "too many sign-in attempts, try again later",
                         headers={"Retry-After": str(held.retry_after)})


@router.post("/code", status_code=202, response_model=schemas.CodeSent,
             summary="Send a sign-in code by SMS (the answer is the same for an unknown phone)")
async def send_code(body: CodeRequest, ctx: Ctx, ip: ClientIp) -> dict[str, object]:
    s = ctx.settings
    phone = _phone(body.phone)
    held = await SigninLimits(ctx.redis, s).ask_code(phone, ip)
    if held is not None:
        raise _held(held)
    code = None
    async with ctx.pool.acquire() as conn, conn.transaction():
        if await exams.patients_with_phone(conn, phone):
            code = await signin.issue(conn, phone=phone, secret=token_secret(s), now=datetime.now(UTC),
                                      valid_for=timedelta(seconds=s.patient_code_seconds))
        await audit.record(conn, actor=f"patient:{mask_phone(phone)}", action="signin-code", entity="patient-session",
                           source_ip=ip, outcome="success" if code else "unknown-phone")
    if code is not None:
        provider: SmsProvider = ctx.extras["sms"]
        text = CODE_TEXT.format(signature=s.patient_sms_signature, code=code, minutes=s.patient_code_seconds // 60)
        try:
            await provider(phone, text)
        except SmsFailed as exc:
            raise HTTPException(503, "the SMS service is unavailable, try again later") from exc
    return {"sent_to": mask_phone(phone), "valid_seconds": s.patient_code_seconds,
            "retry_after_seconds": s.patient_code_interval_seconds}


@router.post("/session", response_model=schemas.SessionOpened, summary="Sign in with the phone and its SMS code")
async def open_session(body: SessionRequest, ctx: Ctx, ip: ClientIp, store: Sessions) -> dict[str, object]:
    s = ctx.settings
    phone = _phone(body.phone)
    limits = SigninLimits(ctx.redis, s)
    held = await limits.failures_held(ip)
    if held is not None:
        raise _held(held)
    async with ctx.pool.acquire() as conn, conn.transaction():
        ok = await signin.redeem(conn, phone=phone, code=body.code, secret=token_secret(s), now=datetime.now(UTC),
                                 max_failures=s.patient_code_attempts)
        ok = ok and bool(await exams.patients_with_phone(conn, phone))
        await audit.record(conn, actor=f"patient:{mask_phone(phone)}", action="login", entity="patient-session",
                           source_ip=ip, outcome="success" if ok else "failure")
    if not ok:
        await limits.failed(ip)
        raise HTTPException(401, "the code is wrong or no longer valid", headers={"WWW-Authenticate": "Bearer"})
    token, _session = await store.open(phone)
    return {"access_token": token, "token_type": "Bearer", "expires_in": s.patient_session_seconds}


@router.delete("/session", status_code=204, summary="Sign out: the session ends everywhere at once")
async def close_session(patient: Patient, store: Sessions, ctx: Ctx, ip: ClientIp) -> Response:
    await store.close(patient)
    async with ctx.pool.acquire() as conn:
        await audit.record(conn, actor=patient.actor, action="logout", entity="patient-session",
                           entity_id=patient.session_id, source_ip=ip)
    return Response(status_code=204)
