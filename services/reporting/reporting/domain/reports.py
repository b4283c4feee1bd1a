"""Reports: every step of the workflow table in one transaction — version, signature, QC,
critical findings, deliveries, events and audit together, or none of them.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from imaging_common import audit
from imaging_common.events import publish
from imaging_common.events.types import CriticalRaised, PatientRef, ReportAmended, ReportSigned

from reporting.domain import critical as critical_finder
from reporting.domain import deliveries, qc, signing
from reporting.domain.content import ReportContent, content_sha256, diff
from reporting.domain.states import FHIR_STATUS, OBR25, Action, State
from reporting.domain.templates import TemplateDefinition, check_values
from reporting.domain.workflow import Grade, four_eyes, transition

SOURCE = "/imaging/reporting"
SIGNING_ACTIONS = {Action.PRELIMINARY, Action.FINAL, Action.SIGN_AMENDED}
DELIVERING_ACTIONS = SIGNING_ACTIONS | {Action.WITHDRAW, Action.CANCEL}


@dataclass(frozen=True)
class Actor:
    user_id: str
    username: str
    display_name: str
    grades: frozenset[Grade]
    source_ip: str | None = None


class ReportError(Exception):
    """Base of domain errors the HTTP adapter turns into problem documents."""


class NotFound(ReportError):
    pass


class Conflict(ReportError):
    pass


class InvalidContent(ReportError):
    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


class QCBlocked(ReportError):
    def __init__(self, issues: list[qc.Issue]):
        super().__init__("pre-sign QC found blockers: " + "; ".join(i.message for i in issues))
        self.issues = issues


@dataclass
class StepResult:
    report_id: str
    state: str
    version: int
    warnings: list[dict[str, Any]] = field(default_factory=list)
    critical_raised: list[str] = field(default_factory=list)
    deliveries: int = 0
    content_sha256: str | None = None


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def template_of(conn: asyncpg.Connection, template_id: str | None) -> TemplateDefinition:
    if not template_id:
        return TemplateDefinition()
    row = await conn.fetchrow("SELECT definition FROM template WHERE id = $1", template_id)
    if row is None:
        raise InvalidContent([f"template {template_id!r} does not exist"])
    return TemplateDefinition.model_validate(_json(row["definition"]))


async def reporter_kind(conn: asyncpg.Connection, username: str) -> str | None:
    return await conn.fetchval("SELECT kind FROM reporter WHERE username = $1", username)


async def _exam(conn: asyncpg.Connection, accession_number: str, *, lock: bool = False) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM exam WHERE accession_number = $1" + (" FOR UPDATE" if lock else ""),
                              accession_number)
    if row is None:
        raise NotFound(f"no exam with accession number {accession_number}")
    return row


async def report_by_id(conn: asyncpg.Connection, report_id: str, *, lock: bool = False) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM report WHERE id = $1" + (" FOR UPDATE" if lock else ""), report_id)
    if row is None:
        raise NotFound(f"no report {report_id}")
    return row


async def _version_content(conn: asyncpg.Connection, report_id: str, version: int) -> dict[str, Any]:
    value = await conn.fetchval("SELECT content FROM report_version WHERE report_id = $1 AND version = $2",
                                report_id, version)
    return _json(value) if value is not None else ReportContent().model_dump()


def _patient(exam: asyncpg.Record) -> dict[str, Any]:
    patient = dict(_json(exam["patient"]) or {})
    patient.setdefault("patient_id", exam["patient_id"] or "")
    patient.setdefault("empi_id", exam["empi_id"] or exam["patient_id"] or "")
    patient.setdefault("name", exam["patient_name"])
    patient.setdefault("sex", exam["sex"])
    return patient


def _mark_critical_options(content: dict[str, Any], definition: TemplateDefinition) -> None:
    for spec in definition.fields:
        value = (content.get("fields") or {}).get(spec.id)
        if value and spec.critical_values and (str(value.get("value")) in spec.critical_values
                                               or value.get("code") in spec.critical_values):
            value["critical"] = True


async def snapshot(conn: asyncpg.Connection, report_id: str, *, version: int | None = None,
                   kind: str | None = None, reason: str | None = None, known: dict[str, Any] | None = None,
                   ) -> dict[str, Any]:
    """Everything the ORU and FHIR builders need about one report version.

    `known` passes what the caller has already read in this transaction (report state and
    counters, exam, content, definition, signer), so the signing path does not read it twice.
    """
    known = known or {}
    report = known.get("report") or await report_by_id(conn, report_id)
    exam = known.get("exam") or await _exam(conn, report["accession_number"])
    version = version or report["version"]
    content = known["content"] if "content" in known else await _version_content(conn, report_id, version)
    sig = known.get("signature") or await conn.fetchrow(
        "SELECT signer_id, signer_name, signed_at FROM signature WHERE report_id = $1 AND version <= $2 "
        "ORDER BY version DESC, id DESC LIMIT 1", report_id, version)
    definition = known.get("definition") or await template_of(conn, report["template_id"])
    state = State(report["state"])
    fhir_status = FHIR_STATUS[state]
    result_status = OBR25.get(state, "P")
    if kind in ("amended", "corrected") or (state == State.FINAL and report["amendment_count"] > 0):
        fhir_status = kind or await conn.fetchval(
            "SELECT kind FROM amendment WHERE report_id = $1 AND status = 'completed' ORDER BY id DESC LIMIT 1",
            report_id) or "amended"
        result_status = "C"
    return {
        "report_id": report_id, "version": version, "state": state.value, "accession_number": exam["accession_number"],
        "study_instance_uid": exam["study_instance_uid"], "patient": _patient(exam),
        "exam": {k: exam[k] for k in ("order_id", "exam_code", "exam_name", "modality", "body_part",
                                      "ordering_doctor", "ordering_doctor_id", "ordering_department",
                                      "completed_at")},
        "content": content, "signer_id": sig["signer_id"] if sig else None,
        "signer_name": sig["signer_name"] if sig else None, "signed_at": sig["signed_at"] if sig else None,
        "result_status": result_status, "fhir_status": fhir_status,
        "field_labels": {f.id: f.label for f in definition.fields}, "amendment_reason": reason,
    }


async def act(
    conn: asyncpg.Connection, *, accession_number: str, action: Action, actor: Actor,
    content: ReportContent | None = None, template_id: str | None = None, note: str | None = None,
    signing_secret: str, expected_version: int | None = None, require_key_approval: bool = False,
    single_reader_site: bool = False, single_reader: bool = False,
) -> StepResult:
    """Take one workflow step on the exam's report (creating it on the first save).

    Four eyes: the final signature must come from someone else than the preliminary author unless
    the site allows single reading (`single_reader_site`), and then the report and the audit row
    record it. `single_reader` says the caller already found this step single-read (amendment review).
    """
    async with conn.transaction():
        exam = await _exam(conn, accession_number, lock=True)
        # The exam lock serializes every step of this exam's report, so the report row and its
        # current content read here stay current until commit (one round trip for both).
        locked = await conn.fetchrow(
            "SELECT r.*, v.content AS current_content FROM report r LEFT JOIN report_version v "
            "ON v.report_id = r.id AND v.version = r.version WHERE r.accession_number = $1 FOR UPDATE OF r",
            accession_number)
        report = locked
        current_content = _json(locked["current_content"]) if locked and locked["current_content"] else None
        state = State(report["state"]) if report else State.NONE
        step = transition(state, action, actor.grades)
        if expected_version is not None and report is not None and report["version"] != expected_version:
            raise Conflict(f"the report is at version {report['version']}, not {expected_version}: reload it")
        if action == Action.FINAL and report is not None:
            single_reader = four_eyes(report["preliminary_by"], actor.username, single_reader_site=single_reader_site,
                                      what="the final signer (the preliminary was signed by that reader)")
        now = datetime.now(UTC)
        if report is None:
            report_id = str(uuid.uuid4())
            chosen = template_id or await _default_template(conn, exam)
            await conn.execute(
                "INSERT INTO report (id, accession_number, template_id, state, created_by) VALUES ($1, $2, $3, $4, $5)",
                report_id, accession_number, chosen, State.DRAFT.value, actor.username)
            report = await report_by_id(conn, report_id, lock=True)
            previous: dict[str, Any] = ReportContent().model_dump()
        else:
            report_id = report["id"]
            if template_id and template_id != report["template_id"]:
                if state not in (State.DRAFT, State.PRELIMINARY):
                    raise Conflict("the template can only change before the report is final")
                await template_of(conn, template_id)
                await conn.execute("UPDATE report SET template_id = $2 WHERE id = $1", report_id, template_id)
                report = await report_by_id(conn, report_id)
            previous = current_content if current_content is not None else ReportContent().model_dump()
        definition = await template_of(conn, report["template_id"])

        new_content = previous
        if content is not None:
            if state not in (State.NONE, State.DRAFT, State.PRELIMINARY, State.CONSULTATION, State.AMENDING):
                raise Conflict(f"a report in state {state.value} cannot be edited")
            new_content = content.model_dump(mode="json")
            problems = check_values(definition, {k: v for k, v in new_content["fields"].items()})
            if problems:
                raise InvalidContent(problems)
            _mark_critical_options(new_content, definition)

        result = StepResult(report_id, step.new_state.value, report["version"])
        issues = qc.check(new_content, definition, sex=exam["sex"], ordered_laterality=exam["laterality"])
        result.warnings = [i.public() for i in issues if i.severity == "warning"]
        if step.signs and qc.blockers(issues):
            raise QCBlocked(qc.blockers(issues))

        amendment = None
        if action == Action.SIGN_AMENDED:
            amendment = await conn.fetchrow(
                "SELECT * FROM amendment WHERE report_id = $1 AND status = 'approved' ORDER BY id DESC LIMIT 1",
                report_id)
            if amendment is None:
                raise Conflict("no approved amendment request for this report")

        version = report["version"] + 1
        await conn.execute(
            """INSERT INTO report_version (report_id, version, state, action, content, saved_by, saved_by_name,
                                          saved_at, note)
               VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9)""",
            report_id, version, step.new_state.value, action.value, json.dumps(new_content, ensure_ascii=False),
            actor.username, actor.display_name, now, note)
        result.version = version
        if content is not None:
            await _store_fields(conn, report_id, new_content)

        updates: dict[str, Any] = {"state": step.new_state.value, "version": version, "updated_at": now,
                                   "positive": new_content.get("positive")}
        if action == Action.PRELIMINARY:
            updates.update(preliminary_at=now, preliminary_by=actor.username)
        if action in (Action.FINAL, Action.SIGN_AMENDED):
            updates.update(final_at=now, final_by=actor.username)
        if action == Action.SIGN_AMENDED:
            updates["amendment_count"] = report["amendment_count"] + 1
        if single_reader and action == Action.FINAL:
            updates["single_reader"] = True

        if step.signs:
            kind = amendment["kind"] if amendment else step.signs
            digest = content_sha256(report_id=report_id, accession_number=accession_number,
                                    patient_id=exam["patient_id"] or "", version=version, content=new_content)
            key = await signing.key_for(conn, user_id=actor.user_id, username=actor.username, secret=signing_secret,
                                        require_approval=require_key_approval)
            message = signing.statement(report_id=report_id, version=version, kind=kind, content_sha256=digest,
                                        signer_id=actor.user_id, signed_at=now, key_id=key.key_id)
            # The signature and its log row (standard 10.2.4 (2)) in one statement.
            await conn.execute(
                """WITH signed AS (
                       INSERT INTO signature (report_id, version, kind, signer_id, signer_name, signed_at,
                                              content_sha256, key_id, signature)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING report_id)
                   INSERT INTO signature_log (report_id, version, actor, action, outcome, detail)
                   SELECT report_id, $2, $10, 'sign', 'signed', $11::jsonb FROM signed""",
                report_id, version, kind, actor.user_id, actor.display_name or actor.username, now, digest,
                key.key_id, signing.sign(key, message), actor.username,
                json.dumps({"kind": kind, "content_sha256": digest, "key_id": key.key_id,
                            **({"single_reader": True} if single_reader else {})}))
            updates["signed_version"] = version
            result.content_sha256 = digest

        sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(updates, start=2))
        await conn.execute(f"UPDATE report SET {sets} WHERE id = $1", report_id, *updates.values())

        if amendment is not None:
            await conn.execute("UPDATE amendment SET status = 'completed', new_version = $2, completed_at = $3 "
                               "WHERE id = $1", amendment["id"], version, now)

        # Critical findings: at once, whatever the state (standard 7.1.3).
        labels = {f.id: f.label for f in definition.fields}
        for found in critical_finder.find(new_content, labels):
            critical_id = str(uuid.uuid4())
            inserted = await conn.fetchval(
                """INSERT INTO critical_finding (critical_id, report_id, finding, item_code, source, raised_by)
                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (report_id, finding) DO NOTHING RETURNING critical_id""",
                critical_id, report_id, found.finding, found.item_code, found.source, actor.username)
            if inserted:
                await conn.execute("UPDATE report SET critical = true WHERE id = $1", report_id)
                await publish(conn, CriticalRaised(
                    critical_id=critical_id, accession_number=accession_number, patient=_patient_ref(exam),
                    finding=found.finding, item_code=found.item_code, modality=exam["modality"], report_id=report_id,
                    raised_by=("ai:" + actor.username) if await reporter_kind(conn, actor.username) == "ai"
                    else actor.user_id,
                    raised_at=now, ordering_doctor_id=exam["ordering_doctor_id"],
                    ordering_department=exam["ordering_department"], ward=exam["ward"],
                    source="dictionary" if found.source == "dictionary" else "radiologist",
                ), source=SOURCE, subject=accession_number)
                result.critical_raised.append(found.finding)

        if action in DELIVERING_ACTIONS:
            known: dict[str, Any] = {
                "report": {**dict(report), **updates}, "exam": exam, "content": new_content, "definition": definition}
            if step.signs:
                known["signature"] = {"signer_id": actor.user_id, "signer_name": actor.display_name or actor.username,
                                      "signed_at": now}
            snap = await snapshot(conn, report_id, version=version, kind=amendment["kind"] if amendment else None,
                                  reason=amendment["reason"] if amendment else None, known=known)
            result.deliveries = await deliveries.enqueue(conn, snap)

        if action == Action.FINAL:
            await publish(conn, ReportSigned(
                report_id=report_id, version=version, accession_number=accession_number,
                study_instance_uid=exam["study_instance_uid"], patient=_patient_ref(exam), signed_by=actor.user_id,
                signed_at=now, content_sha256=result.content_sha256 or "", impression=new_content.get("impression"),
                positive=new_content.get("positive"), preliminary_at=report["preliminary_at"],
                preliminary_by=report["preliminary_by"],
                preliminary_kept=await _preliminary_kept(conn, report_id, new_content.get("impression"))),
                source=SOURCE, subject=accession_number)
        if action == Action.SIGN_AMENDED and amendment is not None:
            await publish(conn, ReportAmended(
                report_id=report_id, version=version, previous_version=amendment["previous_version"],
                accession_number=accession_number, patient=_patient_ref(exam), kind=amendment["kind"],
                reason=amendment["reason"], signed_by=actor.user_id, signed_at=now),
                source=SOURCE, subject=accession_number)

        await audit.record(conn, actor=actor.username, action="update" if report["version"] else "create",
                           entity="report", entity_id=report_id, patient_id=exam["patient_id"],
                           source_ip=actor.source_ip, service="reporting",
                           detail={"step": action.value, "from": state.value, "to": step.new_state.value,
                                   "version": version, "note": note,
                                   **({"single_reader": True} if single_reader else {})})
        return result


async def _preliminary_kept(conn: asyncpg.Connection, report_id: str, final_impression: Any) -> bool | None:
    """Did the final impression keep the last preliminary one (8.3.3)? None without a preliminary."""
    preliminary = await conn.fetchrow(
        """SELECT v.content ->> 'impression' AS impression FROM signature s JOIN report_version v
             ON v.report_id = s.report_id AND v.version = s.version
           WHERE s.report_id = $1 AND s.kind = 'preliminary' ORDER BY s.id DESC LIMIT 1""", report_id)
    return None if preliminary is None else preliminary["impression"] == final_impression


def _patient_ref(exam: asyncpg.Record) -> PatientRef:
    patient = _patient(exam)
    try:
        return PatientRef.model_validate(patient)
    except Exception:  # an exam learnt without full patient data: the essentials are enough
        return PatientRef(empi_id=patient.get("empi_id") or "", patient_id=patient.get("patient_id") or "",
                          name=patient.get("name") or "", sex=patient.get("sex") if patient.get("sex") in (
                              "M", "F", "O", "U") else "U")


async def _default_template(conn: asyncpg.Connection, exam: asyncpg.Record) -> str | None:
    """The most specific template for the exam's modality and body part, if any."""
    return await conn.fetchval(
        """SELECT id FROM template WHERE (modality IS NULL OR modality = $1)
               AND (body_part IS NULL OR body_part = $2)
           ORDER BY (modality IS NOT NULL)::int + (body_part IS NOT NULL)::int DESC, id LIMIT 1""",
        exam["modality"], exam["body_part"])


async def _store_fields(conn: asyncpg.Connection, report_id: str, content: dict[str, Any]) -> None:
    """Structured fields of the latest version as searchable rows."""
    await conn.execute("DELETE FROM report_field WHERE report_id = $1", report_id)
    rows = []
    for field_id, value in (content.get("fields") or {}).items():
        raw = value.get("value")
        number = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None
        rows.append((report_id, field_id, None if raw is None else str(raw), number, value.get("unit"),
                     value.get("code"), value.get("code_system")))
    if rows:
        await conn.executemany(
            "INSERT INTO report_field (report_id, field_id, value_text, value_number, unit, code, code_system) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)", rows)


# ---- amendments (standard 7.1.4) -----------------------------------------------------------------

async def _lock_report(conn: asyncpg.Connection, report_id: str) -> asyncpg.Record:
    """Lock exam then report, the order `act` takes them in, so two steps never deadlock."""
    accession = await conn.fetchval("SELECT accession_number FROM report WHERE id = $1", report_id)
    if accession is None:
        raise NotFound(f"no report {report_id}")
    await _exam(conn, accession, lock=True)
    return await report_by_id(conn, report_id, lock=True)


async def request_amendment(conn: asyncpg.Connection, *, report_id: str, kind: str, reason: str, actor: Actor,
                            signing_secret: str) -> StepResult:
    async with conn.transaction():
        report = await _lock_report(conn, report_id)
        transition(State(report["state"]), Action.REQUEST_AMENDMENT, actor.grades)
        await conn.execute(
            "INSERT INTO amendment (report_id, kind, reason, requested_by, previous_version) "
            "VALUES ($1, $2, $3, $4, $5)",
            report_id, kind, reason, actor.username, report["signed_version"] or report["version"])
        return await act(conn, accession_number=report["accession_number"], action=Action.REQUEST_AMENDMENT,
                         actor=actor, note=f"{kind}: {reason}", signing_secret=signing_secret)


async def review_amendment(conn: asyncpg.Connection, *, report_id: str, approve: bool, note: str | None,
                           actor: Actor, signing_secret: str, single_reader_site: bool = False) -> StepResult:
    """Approve or reject the pending request; four eyes: not by the person who asked for it."""
    async with conn.transaction():
        report = await _lock_report(conn, report_id)
        action = Action.APPROVE_AMENDMENT if approve else Action.REJECT_AMENDMENT
        transition(State(report["state"]), action, actor.grades)
        requested_by = await conn.fetchval(
            "SELECT requested_by FROM amendment WHERE report_id = $1 AND status = 'requested' ORDER BY id DESC "
            "LIMIT 1", report_id)
        single = four_eyes(requested_by, actor.username, single_reader_site=single_reader_site,
                           what="whoever decides an amendment request (the request was made by that person)")
        await conn.execute(
            "UPDATE amendment SET status = $2, reviewed_by = $3, reviewed_at = now(), review_note = $4, "
            "single_reader = $5 WHERE report_id = $1 AND status = 'requested'",
            report_id, "approved" if approve else "rejected", actor.username, note, single)
        return await act(conn, accession_number=report["accession_number"], action=action, actor=actor, note=note,
                         signing_secret=signing_secret, single_reader=single)


# ---- reading -------------------------------------------------------------------------------------

async def history(conn: asyncpg.Connection, report_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT version, state, action, saved_by, saved_by_name, saved_at, note FROM report_version "
        "WHERE report_id = $1 ORDER BY version", report_id)
    return [dict(r) for r in rows]


async def compare(conn: asyncpg.Connection, report_id: str, a: int, b: int) -> dict[str, Any]:
    """Changes from version a to version b, with who saved each version in between."""
    rows = {r["version"]: r for r in await conn.fetch(
        "SELECT version, content, saved_by, saved_by_name, saved_at, action FROM report_version "
        "WHERE report_id = $1 AND version = ANY($2::int[])", report_id, [a, b])}
    if a not in rows or b not in rows:
        raise NotFound(f"report {report_id} has no version {a if a not in rows else b}")
    lo, hi = min(a, b), max(a, b)
    # Who changed what: each step's own changes between lo and hi.
    steps = await conn.fetch(
        "SELECT version, content, saved_by, saved_by_name, saved_at, action FROM report_version "
        "WHERE report_id = $1 AND version BETWEEN $2 AND $3 ORDER BY version", report_id, lo, hi)
    per_step = []
    for before, after in zip(steps, steps[1:], strict=False):
        changes = diff(_json(before["content"]), _json(after["content"]))
        if changes:
            per_step.append({"version": after["version"], "by": after["saved_by"], "by_name": after["saved_by_name"],
                             "at": after["saved_at"], "action": after["action"], "changes": changes})
    return {"report_id": report_id, "from": a, "to": b,
            "changes": diff(_json(rows[a]["content"]), _json(rows[b]["content"])), "by_step": per_step}


async def verify_signature(conn: asyncpg.Connection, *, report_id: str, actor: str,
                           version: int | None = None) -> dict[str, Any]:
    """Recompute the content hash of the signed version and check the signature; logged."""
    report = await report_by_id(conn, report_id)
    exam = await _exam(conn, report["accession_number"])
    sig = await conn.fetchrow(
        "SELECT s.*, k.public_key, k.status AS key_status FROM signature s JOIN signing_key k USING (key_id) "
        "WHERE s.report_id = $1 AND ($2::int IS NULL OR s.version = $2) ORDER BY s.version DESC, s.id DESC LIMIT 1",
        report_id, version)
    result: dict[str, Any] = {"report_id": report_id}
    if sig is None:
        result.update(valid=False, outcome="unsigned", detail="no signature on this report/version")
    else:
        content = await _version_content(conn, report_id, sig["version"])
        digest = content_sha256(report_id=report_id, accession_number=report["accession_number"],
                                patient_id=exam["patient_id"] or "", version=sig["version"], content=content)
        message = signing.statement(report_id=report_id, version=sig["version"], kind=sig["kind"],
                                    content_sha256=sig["content_sha256"], signer_id=sig["signer_id"],
                                    signed_at=sig["signed_at"], key_id=sig["key_id"])
        signature_ok = signing.verify(sig["public_key"], message, sig["signature"])
        content_ok = digest == sig["content_sha256"]
        outcome = "valid" if signature_ok and content_ok else ("tampered" if not content_ok else "bad-signature")
        result.update(
            valid=outcome == "valid", outcome=outcome, version=sig["version"], kind=sig["kind"],
            signer_id=sig["signer_id"], signer_name=sig["signer_name"], signed_at=sig["signed_at"].isoformat(),
            key_id=sig["key_id"], key_status=sig["key_status"], signed_sha256=sig["content_sha256"],
            current_sha256=digest,
            detail={"valid": "content and signature match",
                    "tampered": "the stored content no longer matches what was signed",
                    "bad-signature": "the signature does not verify with the signer's key"}[outcome])
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO signature_log (report_id, version, actor, action, outcome, detail) "
            "VALUES ($1, $2, $3, 'verify', $4, $5::jsonb)",
            report_id, result.get("version"), actor, result["outcome"],
            json.dumps({k: result.get(k) for k in ("signed_sha256", "current_sha256", "key_id")}))
    return result


async def search_ids(conn: asyncpg.Connection, *, accession_number: str | None, patient: str | None,
                     limit: int = 100) -> list[str]:
    """Reports of an exam or of a patient (any of their identifiers), the last changed first."""
    rows = await conn.fetch(
        """SELECT r.id FROM report r JOIN exam e USING (accession_number)
           WHERE ($1::text IS NULL OR e.accession_number = $1)
             AND ($2::text IS NULL OR e.patient_id = $2 OR e.empi_id = $2 OR e.patient ->> 'patient_id' = $2)
           ORDER BY r.updated_at DESC LIMIT $3""", accession_number, patient, limit)
    return [r["id"] for r in rows]


async def id_of_observation(conn: asyncpg.Connection, observation_id: str) -> str | None:
    """The report an Observation id (`<report id>-<field id>`) belongs to: the longest id it starts with."""
    return await conn.fetchval(
        "SELECT r.id FROM report r WHERE $1 LIKE r.id || '-%' ORDER BY length(r.id) DESC LIMIT 1", observation_id)


async def report_by_accession(conn: asyncpg.Connection, accession_number: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM report WHERE accession_number = $1", accession_number)


async def version_content(conn: asyncpg.Connection, report_id: str, version: int) -> Any:
    """A version's stored content as it is in the row (JSON text or None)."""
    return await conn.fetchval("SELECT content FROM report_version WHERE report_id = $1 AND version = $2",
                               report_id, version)


async def version_row(conn: asyncpg.Connection, report_id: str, version: int) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM report_version WHERE report_id = $1 AND version = $2",
                               report_id, version)


async def critical_findings(conn: asyncpg.Connection, report_id: str) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT critical_id, finding, item_code, source, raised_by, raised_at "
                            "FROM critical_finding WHERE report_id = $1 ORDER BY raised_at", report_id)


async def search_fields(conn: asyncpg.Connection, *, field_id: str | None, value: str | None, code: str | None,
                        min_number: float | None, max_number: float | None, limit: int) -> list[asyncpg.Record]:
    """Reports by structured field value or code (data, not text search), newest first."""
    return await conn.fetch(
        """SELECT r.id AS report_id, r.accession_number, r.state, f.field_id, f.value_text, f.value_number,
                  f.unit, f.code, f.code_system
           FROM report_field f JOIN report r ON r.id = f.report_id
           WHERE ($1::text IS NULL OR f.field_id = $1) AND ($2::text IS NULL OR f.value_text = $2)
             AND ($3::text IS NULL OR f.code = $3) AND ($4::float8 IS NULL OR f.value_number >= $4)
             AND ($5::float8 IS NULL OR f.value_number <= $5)
           ORDER BY r.updated_at DESC LIMIT $6""", field_id, value, code, min_number, max_number, limit)


async def amendments(conn: asyncpg.Connection, report_id: str) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM amendment WHERE report_id = $1 ORDER BY id", report_id)


async def add_consultation_note(conn: asyncpg.Connection, report_id: str, author: str, note: str) -> asyncpg.Record:
    row = await conn.fetchrow("INSERT INTO consultation_note (report_id, author, note) VALUES ($1, $2, $3) "
                              "RETURNING *", report_id, author, note)
    assert row is not None  # INSERT ... RETURNING always returns the row
    return row


async def consultation_notes(conn: asyncpg.Connection, report_id: str) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM consultation_note WHERE report_id = $1 ORDER BY id", report_id)
