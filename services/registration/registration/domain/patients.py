"""Patients at the front desk: register with identity matching, update, search, verify, merge.

Each change runs in one transaction with its audit row and its event (outbox), so a failure
leaves no half-registered patient and no event about something that did not happen.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import asyncpg
from imaging_common import audit
from imaging_common.empi import store
from imaging_common.empi.bands import Thresholds
from imaging_common.empi.fellegi_sunter import FellegiSunterModel
from imaging_common.empi.identifiers import Identifier, IdType, InvalidIdentifier, mask, mask_phone
from imaging_common.empi.matcher import Scorer
from imaging_common.empi.names import NameForm, has_han, name_form
from imaging_common.empi.record import normalize_phone
from imaging_common.empi.store import IncomingPerson, Person, Resolution
from imaging_common.events import publish
from imaging_common.events.types import PatientMerged, PatientRef, PatientRegistered, PatientUpdated
from imaging_common.sql import Where

if TYPE_CHECKING:
    from registration.settings import Settings

SOURCE = "/imaging/registration"


@dataclass(frozen=True)
class Actor:
    """Who does it and from where (audit)."""

    name: str
    source_ip: str | None = None


def scorer_for(settings: Settings) -> Scorer:
    path = settings.empi_model_file
    model = FellegiSunterModel.load(path) if path else FellegiSunterModel.default()
    return Scorer(model, Thresholds(link=settings.empi_link_threshold, review=settings.empi_review_threshold))


def patient_ref(person: Person) -> PatientRef:
    return PatientRef(**person.patient_ref())


def age_of(born: date | None, today: date | None = None) -> int | None:
    if born is None:
        return None
    today = today or date.today()
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def summary(person: Person) -> dict[str, Any]:
    """What a list shows: masked ID and phone, age and sex to tell namesakes apart."""
    return {
        "empi_id": person.empi_id, "patient_id": person.patient_id, "name": person.name,
        "name_latin": person.name_latin, "birth_date": person.birth_date, "age": age_of(person.birth_date),
        "sex": person.sex, "id_type": person.id_type, "id_number_masked": mask(person.id_number),
        "phone_masked": mask_phone(person.phone), "address": person.address, "verified": person.verified,
        "status": person.status,
    }


def detail(person: Person) -> dict[str, Any]:
    """One patient opened by a clerk: the full record (this read is audited)."""
    return {**summary(person), "id_number": person.id_number, "phone": person.phone, "postcode": person.postcode,
            "merged_into": person.merged_into, "version": person.version,
            "identifiers": [{"type": i["type"], "value": i["value"], "valid": i["valid"]} for i in person.identifiers],
            "created_at": person.created_at, "updated_at": person.updated_at}


async def register(conn: asyncpg.Connection, incoming: IncomingPerson, *, actor: Actor, scorer: Scorer,
                   link_to: str | None = None, force_new: bool = False, strict: bool = True,
                   patient_id_prefix: str = "P", confirm: bool = False) -> Resolution:
    """Register (or link) a patient. A link that would change who a known patient is (name, birth date,
    sex) is held pending (outcome "pending", the changes in `pending`) until the desk confirms it."""
    async with conn.transaction():
        res = await store.register(conn, incoming, actor=actor.name, scorer=scorer, link_to=link_to,
                                   force_new=force_new, strict=strict, patient_id_prefix=patient_id_prefix,
                                   confirm=confirm)
        p = res.person
        if res.outcome == "created":
            await publish(conn, PatientRegistered(patient=patient_ref(p)), source=SOURCE, subject=p.empi_id)
        elif res.changed:
            await publish(conn, PatientUpdated(patient=patient_ref(p), changed=res.changed), source=SOURCE,
                          subject=p.empi_id)
        await audit.record(conn, actor=actor.name, action="create" if res.outcome == "created" else "link",
                           entity="patient", entity_id=p.empi_id, patient_id=p.empi_id, source_ip=actor.source_ip,
                           detail={"source": incoming.source, "outcome": res.outcome, "reviews": res.review_ids,
                                   "changed": res.changed, "pending": sorted(res.pending)})
        return res


async def update(conn: asyncpg.Connection, empi_id: str, incoming: IncomingPerson, *, actor: Actor,
                 strict: bool = True, confirm: bool = True) -> tuple[Person, list[str]]:
    async with conn.transaction():
        person, changed = await store.update(conn, empi_id, incoming, actor=actor.name, strict=strict,
                                             confirm=confirm)
        if changed:
            await publish(conn, PatientUpdated(patient=patient_ref(person), changed=changed), source=SOURCE,
                          subject=person.empi_id)
        await audit.record(conn, actor=actor.name, action="update", entity="patient", entity_id=person.empi_id,
                           patient_id=person.empi_id, source_ip=actor.source_ip,
                           detail={"changed": changed, "source": incoming.source})
        return person, changed


async def pending_changes(conn: asyncpg.Connection, *, actor: Actor, limit: int = 50) -> list[dict[str, Any]]:
    """Changes of who a patient is, waiting for the desk, with the current and the proposed values."""
    items = await store.pending_changes(conn, limit=limit)
    for item in items:
        await audit.record_read(conn, actor=actor.name, entity="patient", entity_id=item["empi_id"],
                                patient_id=item["empi_id"], source_ip=actor.source_ip,
                                detail={"pending_change": item["id"]})
    return items


async def decide_change(conn: asyncpg.Connection, source_record_id: str, *, accept: bool,
                        actor: Actor) -> tuple[Person, list[str]]:
    """The desk confirms (patient.updated follows) or rejects a pending change."""
    async with conn.transaction():
        person, changed = await store.decide_pending(conn, source_record_id, accept=accept, actor=actor.name)
        if changed:
            await publish(conn, PatientUpdated(patient=patient_ref(person), changed=changed), source=SOURCE,
                          subject=person.empi_id)
        await audit.record(conn, actor=actor.name, action="update", entity="patient", entity_id=person.empi_id,
                           patient_id=person.empi_id, source_ip=actor.source_ip,
                           detail={"pending_change": source_record_id, "accepted": accept, "changed": changed})
        return person, changed


async def read(conn: asyncpg.Connection, empi_id: str, *, actor: Actor) -> Person:
    async with conn.transaction():
        person = await store.get_person(conn, empi_id, follow_merged=True)
        await audit.record_read(conn, actor=actor.name, entity="patient", entity_id=person.empi_id,
                                patient_id=person.empi_id, source_ip=actor.source_ip)
        return person


_DIGITS_ONLY = re.compile(r"^[\dXx*\s-]+$")


async def search(conn: asyncpg.Connection, query: str, *, actor: Actor, limit: int = 20) -> list[Person]:
    """By name (characters or pinyin, prefix), ID number, card/HIS/PACS number, or phone."""
    q = query.strip()
    if not q:
        return []
    empi_ids: list[str] = []
    kind = "name"
    compact = q.replace(" ", "").replace("-", "")
    if _DIGITS_ONLY.match(q) or re.match(r"^[A-Za-z]{0,3}\d{4,}", compact):
        kind = "number"
        rows = await conn.fetch(
            "SELECT DISTINCT empi_id FROM empi_identifier WHERE value = $1 OR value = upper($1) LIMIT $2",
            compact, limit)
        empi_ids += [r["empi_id"] for r in rows]
        phone = normalize_phone(compact)
        rows = await conn.fetch(
            "SELECT empi_id FROM empi_person WHERE (phone = $1 OR patient_id = upper($2)) LIMIT $3",
            phone, compact, limit)
        empi_ids += [r["empi_id"] for r in rows]
    else:
        form = name_search_form(q)
        if form is not None:
            if has_han(q):
                rows = await conn.fetch(
                    """SELECT empi_id FROM empi_person WHERE status = 'active' AND (name = $1
                       OR name LIKE $3 ESCAPE '\\' OR name_key = $2) ORDER BY (name = $1) DESC, name LIMIT $4""",
                    form.han, form.key, like_prefix(form.han or ""), limit)
            else:
                rows = await conn.fetch(
                    """SELECT empi_id FROM empi_person WHERE status = 'active' AND name_key LIKE $2 ESCAPE '\\'
                       ORDER BY (name_key = $1) DESC, name_key LIMIT $3""", form.key, like_prefix(form.key), limit)
            empi_ids += [r["empi_id"] for r in rows]
    out: list[Person] = []
    seen: set[str] = set()
    for eid in empi_ids:
        person = await store.get_person(conn, eid, follow_merged=True)
        if person.empi_id not in seen:
            seen.add(person.empi_id)
            out.append(person)
    await audit.record(conn, actor=actor.name, action="search", entity="patient", source_ip=actor.source_ip,
                       detail={"kind": kind, "query": mask(q) if kind == "number" else q, "results": len(out)})
    return out


MIN_NAME_CHARACTERS = 2  # a name search narrower than one character of a name (or one Latin letter)


def name_search_form(text: str) -> NameForm | None:
    """The name a search looks for, or None when too little is left of it once punctuation and
    wildcards are dropped ("-", "%", "张"): such a search would list the register."""
    cleaned = " ".join("".join(ch if ch.isalnum() or ch.isspace() else " " for ch in text).split())
    form = name_form(cleaned) if cleaned else None
    if form is None or len(form.han or form.key.replace(" ", "")) < MIN_NAME_CHARACTERS:
        return None
    return form


def like_prefix(value: str) -> str:
    """`value%` for LIKE ... ESCAPE '\\', with LIKE's own characters in `value` taken literally."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def search_by_criteria(conn: asyncpg.Connection, *, empi_id: str | None = None,
                             pacs_patient_id: str | None = None, identifier: tuple[str, str | None] | None = None,
                             name: NameForm | None = None, birth_date: date | None = None,
                             limit: int) -> list[str]:
    """The active patients meeting every criterion given, oldest first (FHIR Patient search): their EMPI ids.
    `identifier` is (value, type), the type None for any; `name` a prefix of the name or its sort key."""
    where = Where("p.status = 'active'")
    where.given("p.empi_id = {}", empi_id)
    where.given("p.patient_id = {}", pacs_patient_id)
    if identifier is not None:
        value, kind = identifier
        of_type = " AND i.type = {}" if kind else ""
        where.add("EXISTS (SELECT 1 FROM empi_identifier i WHERE i.empi_id = p.empi_id AND i.value = {}"
                  + of_type + ")", value, *([kind] if kind else []))
    if name is not None:
        where.add("(p.name LIKE {} ESCAPE '\\' OR p.name_key LIKE {} ESCAPE '\\')",
                  like_prefix(name.han or name.key), like_prefix(name.key))
    where.given("p.birth_date = {}", birth_date)
    rows = await conn.fetch(f"SELECT p.empi_id FROM empi_person p WHERE {where} "
                            f"ORDER BY p.created_at LIMIT {where.arg(limit)}", *where.args)
    return [r["empi_id"] for r in rows]


async def match_preview(conn: asyncpg.Connection, incoming: IncomingPerson, *, scorer: Scorer,
                        actor: Actor) -> list[dict[str, Any]]:
    """Who this might be, before saving: the same-name panel (nothing is written but the audit row)."""
    record = incoming.match_record()
    candidates = await store.find_candidates(conn, record, scorer=scorer)
    out = []
    for cand in candidates[:10]:
        person = await store.get_person(conn, cand.empi_id)
        out.append({"patient": summary(person), "band": cand.scored.band.value,
                    "weight": round(cand.scored.weight, 2), "reason": cand.scored.reason,
                    "fields": scorer.model.explain(cand.scored.gamma)})
    # Namesakes the matcher did not propose (another birth date): still shown, the clerk asks.
    form = name_form(incoming.name)
    if form is not None:
        rows = await conn.fetch("SELECT empi_id FROM empi_person WHERE status = 'active' AND name_key = $1 LIMIT 20",
                                form.key)
        shown = {o["patient"]["empi_id"] for o in out}
        for r in rows:
            if r["empi_id"] not in shown:
                person = await store.get_person(conn, r["empi_id"])
                out.append({"patient": summary(person), "band": "same-name", "weight": None, "reason": None,
                            "fields": {}})
    await audit.record(conn, actor=actor.name, action="match", entity="patient", source_ip=actor.source_ip,
                       detail={"candidates": len(out)})
    return out


async def verify_identity(conn: asyncpg.Connection, empi_id: str, *, method: str, document_type: str | None,
                          document_number: str | None, note: str | None, actor: Actor) -> dict[str, Any]:
    """Record that a clerk checked the patient's identity document (standard 6.1.3 (1))."""
    async with conn.transaction():
        person = await store.get_person(conn, empi_id, follow_merged=True)
        matches: bool | None = None
        if document_number:
            ident = Identifier.of(document_type or IdType.RESIDENT_ID, document_number)
            matches = any(i["type"] == ident.type.value and i["value"] == ident.value for i in person.identifiers)
        vid = str(uuid.uuid4())
        await conn.execute(
            """INSERT INTO identity_verification (id, empi_id, method, document_type, document_masked,
                   verified_by, note) VALUES ($1,$2,$3,$4,$5,$6,$7)""",
            vid, person.empi_id, method, document_type, mask(document_number), actor.name, note)
        await audit.record(conn, actor=actor.name, action="verify", entity="patient", entity_id=person.empi_id,
                           patient_id=person.empi_id, source_ip=actor.source_ip,
                           detail={"method": method, "document_matches": matches})
        return {"id": vid, "empi_id": person.empi_id, "method": method, "document_type": document_type,
                "document_masked": mask(document_number), "document_matches": matches, "verified_by": actor.name}


async def merge(conn: asyncpg.Connection, survivor: str, merged: str, *, actor: Actor, reason: str) -> Person:
    async with conn.transaction():
        gone = await store.get_person(conn, merged)
        person = await store.merge(conn, survivor, merged, actor=actor.name, reason=reason)
        await _merged_event(conn, person, gone)
        await audit.record(conn, actor=actor.name, action="merge", entity="patient", entity_id=person.empi_id,
                           patient_id=person.empi_id, source_ip=actor.source_ip,
                           detail={"merged": gone.empi_id, "reason": reason})
        return person


async def _merged_event(conn: asyncpg.Connection, survivor: Person, gone: Person) -> None:
    from registration.domain.orders import announce_orders_of  # orders build on patients, not the reverse

    after = await store.get_person(conn, gone.empi_id)
    await publish(conn, PatientMerged(surviving=patient_ref(survivor), merged_empi_ids=[gone.empi_id],
                                      merged_patient_ids=[gone.patient_id],
                                      merged_versions={gone.empi_id: after.version}),
                  source=SOURCE, subject=survivor.empi_id)
    await announce_orders_of(conn, [gone.empi_id],
                             reason=f"patient {gone.patient_id} merged into {survivor.patient_id}")


async def unmerge(conn: asyncpg.Connection, merged: str, *, actor: Actor, reason: str) -> tuple[Person, Person]:
    async with conn.transaction():
        kept, restored = await store.unmerge(conn, merged, actor=actor.name, reason=reason)
        for person in (kept, restored):
            await publish(conn, PatientUpdated(patient=patient_ref(person), changed=["unmerged"]), source=SOURCE,
                          subject=person.empi_id)
        from registration.domain.orders import announce_orders_of  # orders build on patients, not the reverse

        await announce_orders_of(conn, [restored.empi_id], reason=f"patient {restored.patient_id} unmerged")
        await audit.record(conn, actor=actor.name, action="unmerge", entity="patient", entity_id=restored.empi_id,
                           patient_id=restored.empi_id, source_ip=actor.source_ip,
                           detail={"from": kept.empi_id, "reason": reason})
        return kept, restored


async def open_reviews(conn: asyncpg.Connection, *, actor: Actor, limit: int = 50) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT * FROM empi_review WHERE status = 'open' ORDER BY weight DESC, created_at LIMIT $1",
                            limit)
    out = []
    for r in rows:
        left = await store.get_person(conn, r["left_empi"])
        right = await store.get_person(conn, r["right_empi"])
        expl = r["explanation"]
        out.append({"id": str(r["id"]), "weight": round(r["weight"], 2), "created_at": r["created_at"],
                    "left": summary(left), "right": summary(right),
                    "explanation": json.loads(expl) if isinstance(expl, str) else expl})
    await audit.record_read(conn, actor=actor.name, entity="empi-review", source_ip=actor.source_ip,
                            detail={"count": len(out)})
    return out


async def resolve_review(conn: asyncpg.Connection, review_id: str, decision: str, *, actor: Actor,
                         survivor: str | None = None) -> dict[str, Any]:
    async with conn.transaction():
        row = await conn.fetchrow("SELECT left_empi, right_empi FROM empi_review WHERE id = $1", review_id)
        if row is None:
            raise store.EmpiError("no such review item")
        other = None
        if decision == "merge":
            keep = survivor or row["right_empi"]
            other = await store.get_person(conn, row["left_empi"] if keep == row["right_empi"] else row["right_empi"])
        result = await store.resolve_review(conn, review_id, decision, actor=actor.name, survivor=survivor)  # type: ignore[arg-type]
        if decision == "merge" and other is not None:
            await _merged_event(conn, result["survivor"], other)
            result["survivor"] = summary(result["survivor"])
        await audit.record(conn, actor=actor.name, action=f"review-{decision}", entity="patient",
                           entity_id=row["left_empi"], patient_id=row["left_empi"], source_ip=actor.source_ip,
                           detail={"review_id": review_id, "other": row["right_empi"]})
        return result


__all__ = ["Actor", "InvalidIdentifier", "register", "search", "update"]
