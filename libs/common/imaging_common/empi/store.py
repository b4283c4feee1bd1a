"""EMPI storage helpers for a service holding the index (tables in empi/migrations/).

All functions take an asyncpg connection and do their work in a transaction (joining the
caller's, so a service can audit and publish events in the same one). Every decision is kept in
`empi_history`: register, link (a source record attached to an existing person), update, merge
(source records moved to the survivor, which is recorded so `unmerge` can move them back),
unmerge and review resolutions. The golden record is recomputed from the source records by the
survivorship rules after each change.

Concurrent registrations of the same person are serialized by transaction-scoped advisory locks
on the record's blocking keys: the second one sees the first one's record and links to it.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from typing import Any, Literal

import asyncpg

from imaging_common.empi.bands import Band
from imaging_common.empi.blocking import KEYS_VERSION, blocking_keys
from imaging_common.empi.frequencies import NameFrequencies, count_keys
from imaging_common.empi.identifiers import Identifier, IdType, mask
from imaging_common.empi.matcher import MAX_BLOCK, ScoredPair, Scorer
from imaging_common.empi.names import NameForm, name_form
from imaging_common.empi.record import MatchRecord, normalize_phone, normalize_sex
from imaging_common.empi.survivorship import Demographics, SourceRecord, golden_record

LOCK_CLASS = 0x454D5049  # "EMPI": first key of pg_advisory_xact_lock(int, int) for blocking keys
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class EmpiError(ValueError):
    """A request the index refuses (unknown person, merging a person into itself...)."""


class PersonNotFound(EmpiError):
    pass


_LONG_AGO = datetime.min.replace(tzinfo=UTC)


def new_empi_id() -> str:
    """26 characters, time ordered (48-bit milliseconds) + 80 random bits: unique without coordination."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in range(25, -1, -1))


@dataclass
class IncomingPerson:
    """A description of a person as one source gives it (a registration, an HL7 PID, a CSV row)."""

    name: str
    birth_date: date | None = None
    sex: str | None = None
    phone: str | None = None
    address: str | None = None
    postcode: str | None = None
    identifiers: list[tuple[str, str]] = field(default_factory=list)  # (type, number)
    source: Literal["verified", "registration", "his", "batch"] = "registration"
    source_key: str | None = None

    def normalized_identifiers(self, *, strict: bool) -> list[Identifier]:
        out: list[Identifier] = []
        for kind, value in self.identifiers:
            if value and str(value).strip():
                out.append(Identifier.of(kind, str(value), strict=strict))
        return out

    def match_record(self, ref: str = "incoming") -> MatchRecord:
        return MatchRecord.build(
            ref, name=self.name, birth_date=self.birth_date, sex=self.sex,
            identifiers=[(i.type, i.value) for i in self.normalized_identifiers(strict=False)],
            phone=self.phone, address=self.address, postcode=self.postcode,
        )


@dataclass
class Person(Demographics):
    empi_id: str
    patient_id: str
    status: str
    merged_into: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    identifiers: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Person:
        return cls(**{f.name: row[f.name] for f in fields(cls) if f.name != "identifiers"})  # loaded apart

    @property
    def id_number_masked(self) -> str | None:
        return mask(self.id_number)

    @property
    def card_number(self) -> str | None:
        """The hospital card last presented (a lost card is replaced by a new number; the old one stays known)."""
        cards = [i for i in self.identifiers if i["type"] == IdType.HOSPITAL_CARD.value and i["valid"]]
        if not cards:
            return None
        return str(max(cards, key=lambda i: i.get("last_seen") or _LONG_AGO)["value"])

    def patient_ref(self) -> dict[str, Any]:
        """Fields of events.types.PatientRef (the ID number masked, never whole; the card for check-in)."""
        return {"empi_id": self.empi_id, "patient_id": self.patient_id, "name": self.name,
                "name_latin": self.name_latin, "birth_date": self.birth_date, "sex": self.sex,
                "phone": self.phone, "id_number_masked": self.id_number_masked, "card_number": self.card_number,
                "version": self.version}


@dataclass
class Candidate:
    empi_id: str
    scored: ScoredPair
    person: Person | None = None


@dataclass
class Resolution:
    person: Person
    outcome: Literal["created", "linked", "pending"]
    source_record_id: str
    candidates: list[Candidate]
    review_ids: list[str]
    changed: list[str]
    # outcome "pending": field -> [now, proposed] of who the person is; nothing applied until confirmed
    pending: dict[str, list[Any]] = field(default_factory=dict)


# Who a person is: a link or a feed never changes these without a person's yes (confirm_pending).
DEMOGRAPHICS = ("name", "birth_date", "sex")

_PERSON_FIELDS = tuple(f.name for f in fields(Demographics))  # what recompute() writes from the golden record


async def _lock_keys(conn: asyncpg.Connection, keys: Sequence[str]) -> None:
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1, h) FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest($2::text[]) k "
        "ORDER BY 1) s", LOCK_CLASS, sorted(keys),
    )


def _source_from_row(row: asyncpg.Record) -> SourceRecord:
    idents = row["identifiers"]
    return SourceRecord(
        id=str(row["id"]), source=row["source"], created_at=row["created_at"], name=row["name"],
        birth_date=row["birth_date"], sex=row["sex"], phone=row["phone"], address=row["address"],
        postcode=row["postcode"], identifiers=json.loads(idents) if isinstance(idents, str) else idents,
    )


def _match_record_of(row: asyncpg.Record) -> MatchRecord:
    src = _source_from_row(row)
    return MatchRecord.build(
        str(row["empi_id"]), name=src.name, birth_date=src.birth_date, sex=src.sex,
        identifiers=[(i["type"], i["value"]) for i in src.identifiers], phone=src.phone, address=src.address,
        postcode=src.postcode,
    )


async def get_person(conn: asyncpg.Connection, empi_id: str, *, follow_merged: bool = False) -> Person:
    row = await conn.fetchrow("SELECT * FROM empi_person WHERE empi_id = $1", empi_id)
    if row is None:
        row = await conn.fetchrow("SELECT * FROM empi_person WHERE patient_id = $1", empi_id)
    if row is None:
        raise PersonNotFound(f"no person {empi_id}")
    seen = {row["empi_id"]}
    while follow_merged and row["status"] == "merged" and row["merged_into"]:
        row = await conn.fetchrow("SELECT * FROM empi_person WHERE empi_id = $1", row["merged_into"])
        if row is None or row["empi_id"] in seen:
            raise EmpiError("broken merge chain")
        seen.add(row["empi_id"])
    person = Person.from_row(row)
    # When each number was last given (its newest source record): the card a patient carries is the latest.
    idents = await conn.fetch(
        """SELECT i.type, i.value, i.valid, max(s.created_at) AS last_seen
           FROM empi_identifier i JOIN empi_source_record s ON s.id = i.source_record_id
           WHERE i.empi_id = $1 GROUP BY i.type, i.value, i.valid ORDER BY i.type, i.value""",
        person.empi_id)
    person.identifiers = [dict(r) for r in idents]
    return person


async def find_by_identifier(conn: asyncpg.Connection, id_type: str, value: str) -> Person | None:
    """The active person holding this number from this authority (normalized first)."""
    ident = Identifier.of(id_type, value, strict=False)
    empi_id = await conn.fetchval(
        """SELECT p.empi_id FROM empi_identifier i JOIN empi_person p USING (empi_id)
           WHERE i.type = $1 AND i.value = $2 ORDER BY (p.status = 'active') DESC, p.created_at LIMIT 1""",
        ident.type.value, ident.value)
    if empi_id is None and ident.type in (IdType.PACS_PATIENT_ID,):
        empi_id = await conn.fetchval("SELECT empi_id FROM empi_person WHERE patient_id = $1", ident.value)
    return None if empi_id is None else await get_person(conn, empi_id, follow_merged=True)


async def find_candidates(
    conn: asyncpg.Connection, record: MatchRecord, *, scorer: Scorer, exclude: Sequence[str] = (), limit: int = 500,
) -> list[Candidate]:
    """Active persons sharing a blocking key, scored (best source record per person), best first."""
    # Keys shared by more than MAX_BLOCK records (a placeholder phone, a very common name with no
    # birth date) carry no evidence and would make every registration slow: skipped, as in MatchIndex.
    rows = await conn.fetch(
        """WITH keys AS (
               SELECT q.key FROM unnest($1::text[]) AS q(key)
               WHERE (SELECT count(*) FROM (SELECT 1 FROM empi_block_key b WHERE b.key = q.key LIMIT $4 + 1) c) <= $4)
           SELECT DISTINCT ON (sr.id) sr.* FROM empi_block_key k
           JOIN keys USING (key)
           JOIN empi_source_record sr ON sr.id = k.source_record_id
           JOIN empi_person p ON p.empi_id = sr.empi_id
           WHERE p.status = 'active' AND NOT (p.empi_id = ANY($2::text[]))
           LIMIT $3""",
        list(blocking_keys(record)), list(exclude), limit, MAX_BLOCK)
    frequencies = await name_frequencies(conn, record.name) if rows else None
    best: dict[str, ScoredPair] = {}
    for row in rows:
        scored = scorer.score(record, _match_record_of(row), frequencies)
        current = best.get(row["empi_id"])
        if current is None or scored.weight > current.weight:
            best[row["empi_id"]] = scored
    out = [Candidate(empi_id, s) for empi_id, s in best.items()]
    out.sort(key=lambda c: c.scored.weight, reverse=True)
    return out


async def name_frequencies(conn: asyncpg.Connection, name: NameForm | None) -> NameFrequencies | None:
    """The counts a name's frequency weight needs (frequencies.py), from empi_name_count. None while
    records stored before the counts are not all counted (count_names): a name would look rarer than
    it is, and a rare name links more readily; without frequencies the weights are as before."""
    if name is None or await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM empi_source_record WHERE NOT name_counted)"):
        return None
    keys = list(count_keys(name))
    rows = await conn.fetch(
        """SELECT c.script, c.kind, c.value, c.n FROM empi_name_count c
           JOIN unnest($1::text[], $2::text[], $3::text[]) AS q(script, kind, value) USING (script, kind, value)""",
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])
    sums = await conn.fetch("SELECT script, kind, sum(n) AS n, count(*) AS distinct_values FROM empi_name_count "
                            "WHERE kind IN ('length', 'unit') GROUP BY script, kind")
    totals: dict[str, tuple[int, int]] = {}
    for r in sums:
        names, units = totals.get(r["script"], (0, 0))
        totals[r["script"]] = (int(r["n"]), units) if r["kind"] == "length" else (names, int(r["n"]))
    if not totals:
        return None
    return NameFrequencies.from_counts({(r["script"], r["kind"], r["value"]): int(r["n"]) for r in rows}, totals,
                                       sum(int(r["distinct_values"]) for r in sums if r["kind"] == "unit"))


async def _add_name_counts(conn: asyncpg.Connection, counts: dict[tuple[str, str, str], int]) -> None:
    # Rows locked in key order: two registrations counting the same names cannot deadlock.
    keys = sorted(counts)
    await conn.execute(
        """INSERT INTO empi_name_count (script, kind, value, n)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) ORDER BY 1, 2, 3
           ON CONFLICT (script, kind, value) DO UPDATE SET n = empi_name_count.n + excluded.n""",
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [counts[k] for k in keys])


async def count_names(conn: asyncpg.Connection, batch: int = 2000) -> int:
    """Count the names of source records stored before empi_name_count existed; returns how many.
    Safe to run from several replicas at once (each takes rows the others have not locked)."""
    done = 0
    while True:
        async with conn.transaction():
            rows = await conn.fetch("SELECT id, name FROM empi_source_record WHERE NOT name_counted "
                                    "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED", batch)
            if not rows:
                return done
            counts: Counter[tuple[str, str, str]] = Counter()
            for r in rows:
                if r["name"] and (form := name_form(r["name"])) is not None:
                    counts.update(count_keys(form))
            if counts:
                await _add_name_counts(conn, counts)
            await conn.execute("UPDATE empi_source_record SET name_counted = true WHERE id = ANY($1::uuid[])",
                               [r["id"] for r in rows])
            done += len(rows)


async def rekey(conn: asyncpg.Connection, batch: int = 2000) -> int:
    """Recompute the blocking keys of source records stored with an older KEYS_VERSION; returns how many.
    Safe to run from several replicas at once (each takes rows the others have not locked), and while
    registering: a record's keys change in one transaction."""
    done = 0
    while True:
        async with conn.transaction():
            rows = await conn.fetch("SELECT * FROM empi_source_record WHERE keys_version < $1 "
                                    "ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED", KEYS_VERSION, batch)
            if not rows:
                return done
            ids = [r["id"] for r in rows]
            keys = [(k, r["id"]) for r in rows for k in blocking_keys(_match_record_of(r))]
            await conn.execute("DELETE FROM empi_block_key WHERE source_record_id = ANY($1::uuid[])", ids)
            await conn.execute(
                "INSERT INTO empi_block_key (key, source_record_id) SELECT * FROM unnest($1::text[], $2::uuid[]) "
                "ON CONFLICT DO NOTHING", [k for k, _ in keys], [sid for _, sid in keys])
            await conn.execute("UPDATE empi_source_record SET keys_version = $1 WHERE id = ANY($2::uuid[])",
                               KEYS_VERSION, ids)
            done += len(rows)


async def _insert_source(conn: asyncpg.Connection, empi_id: str, incoming: IncomingPerson, actor: str) -> str:
    sid = str(uuid.uuid4())
    idents = incoming.normalized_identifiers(strict=False)
    body = [{"type": i.type.value, "value": i.value, "valid": i.valid} for i in idents]
    await conn.execute(
        """INSERT INTO empi_source_record (id, empi_id, source, source_key, name, birth_date, sex, phone, address,
               postcode, identifiers, actor, name_counted, keys_version)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11::jsonb,$12,true,$13)""",
        sid, empi_id, incoming.source, incoming.source_key, incoming.name, incoming.birth_date,
        normalize_sex(incoming.sex), normalize_phone(incoming.phone), incoming.address, incoming.postcode,
        json.dumps(body, ensure_ascii=False), actor, KEYS_VERSION)
    if body:
        await conn.executemany(
            "INSERT INTO empi_identifier (source_record_id, empi_id, type, value, valid) VALUES ($1,$2,$3,$4,$5) "
            "ON CONFLICT DO NOTHING", [(sid, empi_id, i["type"], i["value"], i["valid"]) for i in body])
    record = incoming.match_record(sid)
    await conn.executemany("INSERT INTO empi_block_key (key, source_record_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                           [(k, sid) for k in blocking_keys(record)])
    if record.name is not None:
        await _add_name_counts(conn, count_keys(record.name))
    return sid


async def _history(conn: asyncpg.Connection, empi_id: str, action: str, actor: str, detail: dict[str, Any]) -> None:
    await conn.execute("INSERT INTO empi_history (empi_id, action, detail, actor) VALUES ($1, $2, $3::jsonb, $4)",
                       empi_id, action, json.dumps(detail, ensure_ascii=False, default=str), actor)


async def recompute(conn: asyncpg.Connection, empi_id: str) -> tuple[Person, list[str]]:
    """Rebuild the golden record from the person's source records; returns it and the changed fields."""
    before = await conn.fetchrow("SELECT * FROM empi_person WHERE empi_id = $1 FOR UPDATE", empi_id)
    if before is None:
        raise PersonNotFound(f"no person {empi_id}")
    rows = await conn.fetch("SELECT * FROM empi_source_record WHERE empi_id = $1 AND status = 'applied'", empi_id)
    golden = golden_record([_source_from_row(r) for r in rows])
    values = {f: getattr(golden, f) for f in _PERSON_FIELDS}
    changed = [f for f in _PERSON_FIELDS if before[f] != values[f]]
    form = name_form(golden.name)
    await conn.execute(
        """UPDATE empi_person SET name=$2, name_latin=$3, birth_date=$4, sex=$5, phone=$6, address=$7, postcode=$8,
               id_type=$9, id_number=$10, verified=$11, name_key=$12, provenance=$13::jsonb,
               version = version + CASE WHEN $14 THEN 1 ELSE 0 END, updated_at = now()
           WHERE empi_id = $1""",
        empi_id, *values.values(), form.key if form else "", json.dumps(golden.provenance), bool(changed))
    return await get_person(conn, empi_id), changed


async def _create_person(conn: asyncpg.Connection, incoming: IncomingPerson, actor: str,
                         patient_id_prefix: str) -> tuple[str, str]:
    empi_id = new_empi_id()
    seq = await conn.fetchval("SELECT nextval('empi_patient_seq')")
    patient_id = f"{patient_id_prefix}{seq:09d}"
    await conn.execute("INSERT INTO empi_person (empi_id, patient_id, name) VALUES ($1, $2, $3)",
                       empi_id, patient_id, incoming.name)
    sid = await _insert_source(conn, empi_id, incoming, actor)
    return empi_id, sid


async def register(
    conn: asyncpg.Connection, incoming: IncomingPerson, *, actor: str, scorer: Scorer | None = None,
    link_to: str | None = None, force_new: bool = False, patient_id_prefix: str = "P", strict: bool = True,
    confirm: bool = False,
) -> Resolution:
    """Find or create the person this description is about.

    Automatic link when the best candidate is in the link band (and `force_new` is not set);
    `link_to` links to a person the clerk chose. Otherwise a new person, with review items for
    every candidate in the review band (or in the link band when the clerk forced a new person).
    `strict` refuses a malformed ID number (the desk, where the clerk can fix it); a feed passes
    strict=False so the number is kept, marked invalid, as evidence for matching.
    A link that would change who the person is (DEMOGRAPHICS) is held "pending" unless `confirm`.
    """
    scorer = scorer or Scorer()
    incoming.normalized_identifiers(strict=strict)  # raises InvalidIdentifier for a malformed number
    record = incoming.match_record()
    async with conn.transaction():
        await _lock_keys(conn, list(blocking_keys(record)))
        candidates = await find_candidates(conn, record, scorer=scorer)
        target: str | None = None
        if link_to:
            target = (await get_person(conn, link_to, follow_merged=True)).empi_id
        elif not force_new and candidates and candidates[0].scored.band is Band.LINK:
            target = candidates[0].empi_id
        if target is not None:
            sid = await _insert_source(conn, target, incoming, actor)
            if not confirm and (pending := await _hold_if_renaming(conn, target, sid, actor)):
                return Resolution(await get_person(conn, target), "pending", sid, candidates, [], [], pending)
            person, changed = await recompute(conn, target)
            score = next((c.scored for c in candidates if c.empi_id == target), None)
            await _history(conn, target, "link", actor, {
                "source_record_id": sid, "source": incoming.source, "by": "clerk" if link_to else "auto",
                "weight": round(score.weight, 2) if score else None, "changed": changed})
            return Resolution(person, "linked", sid, candidates, [], changed)
        empi_id, sid = await _create_person(conn, incoming, actor, patient_id_prefix)
        person, _ = await recompute(conn, empi_id)
        await _history(conn, empi_id, "register", actor, {"source_record_id": sid, "source": incoming.source})
        review_ids = []
        for cand in candidates:
            if cand.scored.band is Band.NEW:
                continue
            rid = await open_review(conn, empi_id, cand.empi_id, cand.scored, scorer=scorer, actor=actor)
            if rid:
                review_ids.append(rid)
        return Resolution(person, "created", sid, candidates, review_ids, [])


async def update(conn: asyncpg.Connection, empi_id: str, incoming: IncomingPerson, *, actor: str,
                 strict: bool = True, confirm: bool = True) -> tuple[Person, list[str]]:
    """New data about a known person (a correction at the desk, ADT^A08): a new source record wins by recency.

    `confirm=False` (a feed's message that is not an explicit update): a change of who the person is waits
    for the desk (pending) and nothing is changed; the returned list is then empty."""
    incoming.normalized_identifiers(strict=strict)
    async with conn.transaction():
        person = await get_person(conn, empi_id, follow_merged=True)
        sid = await _insert_source(conn, person.empi_id, incoming, actor)
        if not confirm and await _hold_if_renaming(conn, person.empi_id, sid, actor):
            return person, []
        person, changed = await recompute(conn, person.empi_id)
        await _history(conn, person.empi_id, "update", actor, {"source_record_id": sid, "changed": changed})
        return person, changed


async def _proposed_changes(conn: asyncpg.Connection, empi_id: str, sid: str) -> dict[str, list[Any]]:
    """field -> [now, with this source record applied] for the DEMOGRAPHICS it would change."""
    rows = await conn.fetch("SELECT * FROM empi_source_record WHERE empi_id = $1 AND (status = 'applied' OR id = $2)",
                            empi_id, sid)
    golden = golden_record([_source_from_row(r) for r in rows])
    now = await conn.fetchrow("SELECT name, birth_date, sex FROM empi_person WHERE empi_id = $1", empi_id)
    return {f: [now[f], getattr(golden, f)] for f in DEMOGRAPHICS if now[f] != getattr(golden, f)}


async def _hold_if_renaming(conn: asyncpg.Connection, empi_id: str, sid: str, actor: str) -> dict[str, list[Any]]:
    """Mark the new source record pending when it would change who the person is; returns the changes."""
    changes = await _proposed_changes(conn, empi_id, sid)
    if changes:
        await conn.execute("UPDATE empi_source_record SET status = 'pending' WHERE id = $1", sid)
        await _history(conn, empi_id, "change-pending", actor,
                       {"source_record_id": sid, "changes": {k: [str(v) if v is not None else None for v in pair]
                                                             for k, pair in changes.items()}})
    return changes


async def has_pending(conn: asyncpg.Connection, empi_id: str) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM empi_source_record WHERE empi_id = $1 "
                                    "AND status = 'pending')", empi_id))


async def pending_changes(conn: asyncpg.Connection, *, limit: int = 50) -> list[dict[str, Any]]:
    """Changes of who a person is waiting for the desk, oldest first, each with [now, proposed] per field."""
    rows = await conn.fetch(
        "SELECT s.id, s.empi_id, s.source, s.source_key, s.actor, s.created_at, p.patient_id "
        "FROM empi_source_record s JOIN empi_person p USING (empi_id) WHERE s.status = 'pending' "
        "ORDER BY s.created_at LIMIT $1", limit)
    out = []
    for r in rows:
        out.append({"id": str(r["id"]), "empi_id": r["empi_id"], "patient_id": r["patient_id"], "source": r["source"],
                    "source_key": r["source_key"], "actor": r["actor"], "created_at": r["created_at"],
                    "changes": await _proposed_changes(conn, r["empi_id"], str(r["id"]))})
    return out


async def decide_pending(conn: asyncpg.Connection, source_record_id: str, *, accept: bool,
                         actor: str) -> tuple[Person, list[str]]:
    """A person at the desk says yes (the record joins the golden record) or no (it stays, rejected)."""
    async with conn.transaction():
        row = await conn.fetchrow("SELECT empi_id, status FROM empi_source_record WHERE id = $1::uuid FOR UPDATE",
                                  source_record_id)
        if row is None or row["status"] != "pending":
            raise EmpiError(f"no pending change {source_record_id}")
        await conn.execute("UPDATE empi_source_record SET status = $2, decided_by = $3, decided_at = now() "
                           "WHERE id = $1::uuid", source_record_id, "applied" if accept else "rejected", actor)
        empi_id = (await get_person(conn, row["empi_id"], follow_merged=True)).empi_id
        person, changed = await recompute(conn, empi_id) if accept else (await get_person(conn, empi_id), [])
        await _history(conn, empi_id, "change-confirmed" if accept else "change-rejected", actor,
                       {"source_record_id": source_record_id, "changed": changed})
        return person, changed


async def open_review(conn: asyncpg.Connection, left: str, right: str, scored: ScoredPair, *, scorer: Scorer,
                      actor: str) -> str | None:
    a, b = sorted((left, right))
    if await conn.fetchval("SELECT 1 FROM empi_distinct WHERE a = $1 AND b = $2", a, b):
        return None
    rid = str(uuid.uuid4())
    inserted = await conn.fetchval(
        """INSERT INTO empi_review (id, left_empi, right_empi, weight, explanation) VALUES ($1,$2,$3,$4,$5::jsonb)
           ON CONFLICT DO NOTHING RETURNING id""",
        rid, left, right, scored.weight, json.dumps(scored.explain(scorer.model), ensure_ascii=False))
    if inserted:
        await _history(conn, left, "review-open", actor, {"review_id": rid, "other": right,
                                                          "weight": round(scored.weight, 2)})
    return str(inserted) if inserted else None


async def merge(conn: asyncpg.Connection, survivor: str, merged: str, *, actor: str, reason: str = "") -> Person:
    """Fold `merged` into `survivor`: its source records move, it stays as an alias pointing to the survivor."""
    async with conn.transaction():
        if survivor == merged:
            raise EmpiError("a person cannot be merged into itself")
        a, b = sorted((survivor, merged))
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", LOCK_CLASS, f"merge:{a}:{b}")
        keep = await get_person(conn, survivor)
        gone = await get_person(conn, merged)
        if keep.status != "active" or gone.status != "active":
            raise EmpiError("only active persons can be merged")
        moved = [str(r["id"]) for r in await conn.fetch(
            "UPDATE empi_source_record SET empi_id = $1 WHERE empi_id = $2 RETURNING id", keep.empi_id, gone.empi_id)]
        await conn.execute("UPDATE empi_identifier SET empi_id = $1 WHERE empi_id = $2", keep.empi_id, gone.empi_id)
        await conn.execute(
            "UPDATE empi_person SET status = 'merged', merged_into = $1, updated_at = now(), version = version + 1 "
            "WHERE empi_id = $2", keep.empi_id, gone.empi_id)
        await conn.execute(
            "UPDATE empi_review SET status = 'obsolete', resolved_at = now(), resolved_by = $3 WHERE status = 'open' "
            "AND ((left_empi = $1 AND right_empi = $2) OR (left_empi = $2 AND right_empi = $1))",
            keep.empi_id, gone.empi_id, actor)
        # A merge is news about the survivor even when no field of its golden record changes.
        await conn.execute("UPDATE empi_person SET version = version + 1 WHERE empi_id = $1", keep.empi_id)
        person, changed = await recompute(conn, keep.empi_id)
        detail = {"merged": gone.empi_id, "merged_patient_id": gone.patient_id, "moved_source_records": moved,
                  "reason": reason, "changed": changed}
        await _history(conn, keep.empi_id, "merge", actor, detail)
        await _history(conn, gone.empi_id, "merged-into", actor, {"survivor": keep.empi_id, "reason": reason})
        return person


async def unmerge(conn: asyncpg.Connection, merged: str, *, actor: str, reason: str = "") -> tuple[Person, Person]:
    """Undo the last merge of `merged`: its source records go back, both golden records are rebuilt."""
    async with conn.transaction():
        gone = await get_person(conn, merged)
        if gone.status != "merged" or not gone.merged_into:
            raise EmpiError(f"{merged} is not merged")
        row = await conn.fetchrow(
            """SELECT empi_id, detail FROM empi_history WHERE action = 'merge' AND detail->>'merged' = $1
               ORDER BY id DESC LIMIT 1""", gone.empi_id)
        if row is None:
            raise EmpiError("no merge recorded for this person")
        survivor = row["empi_id"]
        detail = json.loads(row["detail"]) if isinstance(row["detail"], str) else row["detail"]
        moved = detail.get("moved_source_records", [])
        await conn.execute("UPDATE empi_source_record SET empi_id = $1 WHERE id = ANY($2::uuid[])", gone.empi_id, moved)
        await conn.execute("UPDATE empi_identifier SET empi_id = $1 WHERE source_record_id = ANY($2::uuid[])",
                           gone.empi_id, moved)
        await conn.execute("UPDATE empi_person SET status = 'active', merged_into = NULL, updated_at = now(), "
                           "version = version + 1 WHERE empi_id = $1", gone.empi_id)
        a, b = sorted((survivor, gone.empi_id))
        await conn.execute("INSERT INTO empi_distinct (a, b, decided_by) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                           a, b, actor)
        await conn.execute("UPDATE empi_person SET version = version + 1 WHERE empi_id = $1", survivor)
        kept, _ = await recompute(conn, survivor)
        restored, _ = await recompute(conn, gone.empi_id)
        await _history(conn, survivor, "unmerge", actor, {"restored": gone.empi_id, "moved_back": moved,
                                                          "reason": reason})
        await _history(conn, gone.empi_id, "restored", actor, {"from": survivor, "reason": reason})
        return kept, restored


async def resolve_review(conn: asyncpg.Connection, review_id: str, decision: Literal["merge", "distinct"], *,
                         actor: str, survivor: str | None = None) -> dict[str, Any]:
    """A clerk's decision on a possible duplicate: merge the two, or record them as distinct people."""
    async with conn.transaction():
        row = await conn.fetchrow("SELECT * FROM empi_review WHERE id = $1 FOR UPDATE", review_id)
        if row is None:
            raise EmpiError("no such review item")
        if row["status"] != "open":
            raise EmpiError(f"review item already {row['status']}")
        left, right = row["left_empi"], row["right_empi"]
        result: dict[str, Any] = {"review_id": review_id, "decision": decision}
        if decision == "merge":
            keep = survivor or right  # default: the older record (the candidate found) survives
            if keep not in (left, right):
                raise EmpiError("the survivor must be one of the two persons")
            other = left if keep == right else right
            await conn.execute("UPDATE empi_review SET status = 'merged', resolved_at = now(), resolved_by = $2 "
                               "WHERE id = $1", review_id, actor)
            person = await merge(conn, keep, other, actor=actor, reason=f"review {review_id}")
            result.update(survivor=person, merged=other)
        elif decision == "distinct":
            a, b = sorted((left, right))
            await conn.execute("INSERT INTO empi_distinct (a, b, decided_by) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING",
                               a, b, actor)
            await conn.execute("UPDATE empi_review SET status = 'distinct', resolved_at = now(), resolved_by = $2 "
                               "WHERE id = $1", review_id, actor)
            await _history(conn, left, "review-distinct", actor, {"review_id": review_id, "other": right})
        else:
            raise EmpiError(f"unknown decision {decision!r}")
        return result


async def history(conn: asyncpg.Connection, empi_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT id, action, detail, actor, at FROM empi_history WHERE empi_id = $1 ORDER BY id",
                            empi_id)
    return [{"id": r["id"], "action": r["action"], "actor": r["actor"], "at": r["at"],
             "detail": json.loads(r["detail"]) if isinstance(r["detail"], str) else r["detail"]} for r in rows]
