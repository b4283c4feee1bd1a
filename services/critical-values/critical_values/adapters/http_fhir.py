"""FHIR R4 endpoints a clinician system calls to acknowledge (standard 7.1.3 (1): the loop back),
under the platform's FHIR base (imaging_common.fhir; the former /api/critical-values/fhir/... answers
308 to it, which keeps the method and body).

    POST /fhir/R4/Communication   a completed Communication in response:
         inResponseTo: [{"reference": "Communication/<our notification id or your Communication id>"}]
         sender: who read it; payload[0].contentString: the action taken
    PUT  /fhir/R4/Task/<id>        the Task we created, status "completed" (or
         "accepted"/"in-progress": read and being handled); owner: who; note[0].text: the action

The caller must be a configured receiver's service account (receiver `fhir_client`, by default a
username equal to the receiver id): the reference is resolved only among the notifications sent to
that receiver, whose own Communication/Task ids mean nothing for any other receiver. `sent` /
`lastModified` are what the receiver claims (no offset = local time); they are kept beside the
time we received the acknowledgement, which is its record.

Bodies are read leniently (a claimed time without an offset is local time, not an error); what we
answer is the acknowledgement as we recorded it, validated with the R4B models. Errors come back as
FHIR OperationOutcome with the HTTP status the FHIR REST spec asks for.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from imaging_common import audit
from imaging_common.fhir import FhirFace
from imaging_common.fhir.resources import fhir_response, outcome, validated

from critical_values.adapters.deps import ClientIp, Clinician, Ctx
from critical_values.adapters.fhir_capability import RESOURCES
from critical_values.domain import lifecycle, notifications, recipients, times
from critical_values.domain.errors import CriticalError

router = APIRouter(tags=["FHIR acknowledgement"])

FACE = FhirFace(router, RESOURCES)


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


async def _ack(ctx: Ctx, ip: str | None, user: Any, ref: str, *, who: str, who_id: str | None, claimed: Any,
               action: str | None, via: str, task: bool) -> JSONResponse | tuple[Any, bool]:
    received_at = datetime.now(UTC)
    claimed_at = times.fhir_instant(claimed, times.zone(ctx.settings.critical_timezone))
    async with ctx.pool.acquire() as conn, conn.transaction():
        receivers = await recipients.receivers_by_fhir_client(conn, user.username)
        if not receivers:
            await audit.record(conn, actor=user.username, action="update", entity="critical_value", source_ip=ip,
                               outcome="failure", detail={"via": via, "refused": "not a clinician system's account",
                                                          "reference": ref})
            return outcome(403, "forbidden", f"{user.username} is not the account of a configured clinician system")
        note = await notifications.by_reference(conn, ref, receivers=receivers, remote=not task, task=task)
        if note is None:
            return outcome(404, "not-found", f"no critical-value notification {ref} was sent to {user.username}")
        detail: dict[str, Any] = {"via": via, "notification_id": note["notification_id"],
                                  "receiver": note["receiver_id"], "by_id": who_id, "system_user": user.username}
        if claimed and claimed_at is None:
            detail["claimed_time_unreadable"] = str(claimed)[:64]
        try:
            cv, changed = await lifecycle.acknowledge(conn, note["critical_id"], by=who, channel="fhir",
                                                      action_taken=action, at=received_at, claimed_at=claimed_at,
                                                      skew=times.skew_of(ctx.settings), detail=detail)
        except CriticalError as exc:
            return outcome(409, "conflict", str(exc))
        await audit.record(conn, actor=user.username, action="update", entity="critical_value",
                           entity_id=note["critical_id"], patient_id=cv["patient_id"], source_ip=ip,
                           detail={"via": via, "acknowledged_by": who, "receiver": note["receiver_id"],
                                   "changed": changed, **({"claimed_at_invalid": cv["acknowledged_claim_invalid"]}
                                                          if changed and cv["acknowledged_claim_invalid"] else {})})
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
    result = await _ack(ctx, ip, user, refs[0], who=who, who_id=who_id, claimed=body.get("sent"), action=action,
                        via="fhir-communication", task=False)
    if isinstance(result, JSONResponse):
        return result
    cv, changed = result
    ack_id = f"ack-{cv['critical_id']}"
    stored = validated(_clean({
        "resourceType": "Communication", "id": ack_id, "status": "completed",
        "inResponseTo": [{"reference": f"Communication/{refs[0]}"}],
        "sender": _party(cv["acknowledged_by"] or who, who_id), "sent": _instant(cv["acknowledged_claimed_at"]),
        "received": _instant(cv["acknowledged_at"]),
        "payload": [{"contentString": cv["action_taken"]}] if cv["action_taken"] else None}))
    return fhir_response(stored, status=201 if changed else 200, headers={"Location": f"Communication/{ack_id}"})


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
    result = await _ack(ctx, ip, user, task_id, who=who, who_id=who_id, claimed=body.get("lastModified"),
                        action=action, via=f"fhir-task-{status}", task=True)
    if isinstance(result, JSONResponse):
        return result
    cv, _ = result
    intent = body.get("intent")
    stored = validated(_clean({
        "resourceType": "Task", "id": task_id, "status": status,
        "intent": intent if isinstance(intent, str) and intent else "order",
        "owner": _party(cv["acknowledged_by"] or who, who_id), "lastModified": _instant(cv["acknowledged_at"]),
        "note": [{"text": cv["action_taken"]}] if cv["action_taken"] else None}))
    return fhir_response(stored)


def _party(display: str, identifier: str | None) -> dict[str, Any]:
    return {"display": display, **({"identifier": {"value": identifier}} if identifier else {})}


def _instant(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at else None


def _clean(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}
