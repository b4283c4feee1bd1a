"""FHIR R4 endpoints a clinician system calls to acknowledge (standard 7.1.3 (1): the loop back).

    POST /api/critical-values/fhir/Communication   a completed Communication in response:
         inResponseTo: [{"reference": "Communication/<our notification id or your Communication id>"}]
         sender: who read it; payload[0].contentString: the action taken
    PUT  /api/critical-values/fhir/Task/<id>        the Task we created, status "completed" (or
         "accepted"/"in-progress": read and being handled); owner: who; note[0].text: the action

Errors come back as FHIR OperationOutcome with the HTTP status the FHIR REST spec asks for.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from imaging_common import audit

from critical_values.adapters.deps import ClientIp, Clinician, Ctx
from critical_values.domain import lifecycle, notifications
from critical_values.domain.errors import CriticalError

router = APIRouter(prefix="/fhir", tags=["FHIR acknowledgement"])
FHIR_JSON = "application/fhir+json"


def outcome(status: int, code: str, text: str) -> JSONResponse:
    return JSONResponse({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": code, "diagnostics": text}]}, status_code=status, media_type=FHIR_JSON)


async def _body(request: Request, kind: str) -> dict[str, Any] | JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        return outcome(400, "structure", "the body is not JSON")
    if not isinstance(body, dict) or body.get("resourceType") != kind:
        return outcome(400, "structure", f"expected a {kind} resource")
    return body


def _who(ref: Any, fallback: str) -> tuple[str, str | None]:
    if isinstance(ref, dict):
        ident = ref.get("identifier") or {}
        return str(ref.get("display") or ident.get("value") or ref.get("reference") or fallback), ident.get("value")
    return fallback, None


def _when(value: Any) -> datetime:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)


async def _ack(ctx: Ctx, ip: str | None, user: Any, ref: str, *, who: str, who_id: str | None, at: datetime,
               action: str | None, via: str) -> JSONResponse | tuple[Any, bool]:
    async with ctx.pool.acquire() as conn, conn.transaction():
        note = await notifications.by_reference(conn, ref)
        if note is None:
            return outcome(404, "not-found", f"no critical-value notification {ref}")
        try:
            cv, changed = await lifecycle.acknowledge(conn, note["critical_id"], by=who, channel="fhir",
                                                      action_taken=action, at=at,
                                                      detail={"via": via, "notification_id": note["notification_id"],
                                                              "by_id": who_id, "system_user": user.username})
        except CriticalError as exc:
            return outcome(409, "conflict", str(exc))
        await audit.record(conn, actor=user.username, action="update", entity="critical_value",
                           entity_id=note["critical_id"], patient_id=cv["patient_id"], source_ip=ip,
                           detail={"via": via, "acknowledged_by": who, "changed": changed})
    return cv, changed


@router.post("/Communication", summary="A clinician system acknowledges with a Communication in response")
async def communication(request: Request, user: Clinician, ctx: Ctx, ip: ClientIp) -> JSONResponse:
    body = await _body(request, "Communication")
    if isinstance(body, JSONResponse):
        return body
    if body.get("status") != "completed":
        return outcome(422, "business-rule", "an acknowledgement is a Communication with status 'completed'")
    refs = [r.get("reference", "") for r in body.get("inResponseTo") or [] if isinstance(r, dict)]
    refs = [r.split("/", 1)[1] for r in refs if r.startswith("Communication/")]
    if not refs:
        return outcome(422, "required", "inResponseTo must reference the Communication being acknowledged")
    who, who_id = _who(body.get("sender"), user.display_name or user.username)
    payload = body.get("payload") or []
    action = next((p.get("contentString") for p in payload if isinstance(p, dict) and p.get("contentString")), None)
    result = await _ack(ctx, ip, user, refs[0], who=who, who_id=who_id, at=_when(body.get("sent")), action=action,
                        via="fhir-communication")
    if isinstance(result, JSONResponse):
        return result
    cv, changed = result
    stored = {**body, "id": f"ack-{cv['critical_id']}"}
    return JSONResponse(stored, status_code=201 if changed else 200, media_type=FHIR_JSON,
                        headers={"Location": f"Communication/ack-{cv['critical_id']}"})


@router.put("/Task/{task_id}", summary="A clinician system updates the Task we gave it")
async def task(task_id: str, request: Request, user: Clinician, ctx: Ctx, ip: ClientIp) -> JSONResponse:
    body = await _body(request, "Task")
    if isinstance(body, JSONResponse):
        return body
    status = body.get("status")
    if status not in ("accepted", "in-progress", "completed"):
        return outcome(422, "business-rule", "the Task acknowledges with status accepted, in-progress or completed")
    who, who_id = _who(body.get("owner"), user.display_name or user.username)
    notes = body.get("note") or []
    action = next((n.get("text") for n in notes if isinstance(n, dict) and n.get("text")), None)
    result = await _ack(ctx, ip, user, task_id, who=who, who_id=who_id, at=_when(body.get("lastModified")),
                        action=action, via=f"fhir-task-{status}")
    if isinstance(result, JSONResponse):
        return result
    return JSONResponse({**body, "id": task_id}, status_code=200, media_type=FHIR_JSON)
