"""Per-subject versions: events about an order, an appointment or a patient apply in version order.

Events reach a service out of order (two replicas, a retry queue, a relay that re-sends): a late
`order.created` must not resurrect an order whose `order.cancelled` came first, and an old patient
snapshot must not overwrite a newer one. So every such event names what it is a snapshot of, as
(subject key, version) pairs (`EventData.subject_versions()`):

- the producer numbers them, in the transaction that publishes: `await next_version(conn, key)`
  (patients use the EMPI person's own version);
- the consumer (`EventConsumer`) calls `claim()` before the handler: an event that is not newer than
  what was applied for any of its subjects is acknowledged as "stale" and never reaches the handler;
- the consumer also remembers the newest snapshot of every patient it sees (`patient_snapshots`: a
  merged patient's is the survivor) and `freshen()`s each event before its handler: a patient inside a
  late order, appointment or exam event is replaced by the newest one seen;
- a handler that copies a patient out of an event about something else (an order, an exam) asks
  `patient_is_current()` and copies with `merge_patient()`: a snapshot older than the copy, or one
  without a version, only fills fields the copy does not know. A partial payload never blanks one.

The claims live in each service's schema (`subject_versions`), written in the handler's transaction,
so a rollback forgets them and two replicas serialise on the row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg

from imaging_common.events.types import EventData, PatientMerged, PatientRef, PatientRegistered, PatientUpdated


async def next_version(conn: asyncpg.Connection, key: str) -> int:
    """The next version of `key` (1 the first time), inside the producer's open transaction."""
    return int(await conn.fetchval(
        "INSERT INTO published_versions (subject_key, version) VALUES ($1, 1) ON CONFLICT (subject_key) "
        "DO UPDATE SET version = published_versions.version + 1 RETURNING version", key,
    ))


async def prepare(conn: asyncpg.Connection, data: EventData) -> EventData | None:
    """What the consumer does before a handler, in its transaction: None when the event is stale (not
    newer for any of its subjects), else the event as the handler should see it (only_newer, freshen),
    with the newest patient snapshots remembered."""
    await lock_patients(conn, data)
    subjects = data.subject_versions()
    won = await claim_keys(conn, subjects)
    if subjects and not won:
        return None
    news = await only_newer(conn, data, won)
    await remember_patient_event(conn, news)
    return await freshen(conn, news)


def _patients_of(data: EventData) -> set[str]:
    ids = set(getattr(data, "merged_empi_ids", None) or ())
    for ref in (getattr(data, "patient", None), getattr(data, "surviving", None),
                getattr(getattr(data, "appointment", None), "patient", None)):
        if isinstance(ref, PatientRef):
            ids.add(ref.empi_id)
    return ids


async def lock_patients(conn: asyncpg.Connection, data: EventData) -> None:
    """Take, until commit, a lock per patient the event names, in a fixed order: two replicas applying
    events about one patient (a merge and an unmerge's order, say) take turns, and each sees what the
    other committed."""
    for empi_id in sorted(_patients_of(data)):
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('imaging-patient:' || $1, 0))", empi_id)


async def claim(conn: asyncpg.Connection, versions: Iterable[tuple[str, int]]) -> bool:
    """Record the versions that are newer than the applied ones; False when none of them is.

    An event without versions is always applied (True). Equal versions are not newer: the same
    snapshot applied twice (a duplicate published under a new event id) changes nothing.
    """
    pairs = list(versions)
    return not pairs or bool(await claim_keys(conn, pairs))


async def claim_keys(conn: asyncpg.Connection, versions: Iterable[tuple[str, int]]) -> set[str]:
    """`claim`, returning the subject keys for which the version was newer (and is now recorded)."""
    won = set()
    for key, version in sorted(versions):  # a fixed order, so two replicas lock rows alike
        if await conn.fetchval(
            "INSERT INTO subject_versions (subject_key, version) VALUES ($1, $2) ON CONFLICT (subject_key) "
            "DO UPDATE SET version = EXCLUDED.version, applied_at = now() "
            "WHERE subject_versions.version < EXCLUDED.version RETURNING true", key, version,
        ):
            won.add(key)
    return won


async def only_newer(conn: asyncpg.Connection, data: EventData, won: set[str]) -> EventData:
    """A merge that is news for some of its patients only: the others are left out, so the handler never
    folds them into the survivor again. A merged patient is news when the merge's version of them is
    newer than any snapshot of them seen, in a patient event (won) or inside another event (an
    unmerge's order.changed can come first)."""
    if not isinstance(data, PatientMerged) or not data.merged_empi_ids:
        return data
    keep = []
    for empi_id in data.merged_empi_ids:
        version = data.merged_versions.get(empi_id)
        if version is not None:
            seen = await conn.fetchval("SELECT version FROM patient_snapshots WHERE empi_id = $1", empi_id)
            if f"patient:{empi_id}" not in won or (seen is not None and seen >= version):
                continue
        keep.append(empi_id)
    if keep == data.merged_empi_ids:
        return data
    pids = dict(zip(data.merged_empi_ids, data.merged_patient_ids, strict=False))
    return data.model_copy(update={"merged_empi_ids": keep, "merged_patient_ids": [pids[e] for e in keep if e in pids],
                                   "merged_versions": {e: v for e, v in data.merged_versions.items() if e in keep}})


async def applied_version(conn: asyncpg.Connection, key: str) -> int | None:
    """The newest version applied for `key`, or None."""
    return await conn.fetchval("SELECT version FROM subject_versions WHERE subject_key = $1", key)


async def remember_patient(conn: asyncpg.Connection, patient: PatientRef, *, as_empi_id: str | None = None,
                           version: int | None = None) -> bool:
    """Keep `patient` as the newest snapshot of `as_empi_id` (default: their own EMPI id) unless a newer one
    is kept; a merged patient is remembered as their survivor. Returns whether it was kept."""
    version = patient.version if version is None else version
    if version is None:
        return False
    return bool(await conn.fetchval(
        "INSERT INTO patient_snapshots (empi_id, version, snapshot) VALUES ($1, $2, $3::jsonb) "
        "ON CONFLICT (empi_id) DO UPDATE SET version = EXCLUDED.version, snapshot = EXCLUDED.snapshot, "
        "seen_at = now() WHERE patient_snapshots.version <= EXCLUDED.version RETURNING true",
        as_empi_id or patient.empi_id, version, patient.model_dump_json()))


async def newest_patient(conn: asyncpg.Connection, patient: PatientRef) -> PatientRef:
    """The newest snapshot of this patient the service has seen: `patient` itself when it is at least as
    new (it is remembered), else the kept one (for a merged patient: the survivor) as it is: an older or
    unversioned snapshot adds nothing to it (what it lacks, the copies keep). Unversioned and nothing
    kept: `patient` as it is."""
    row = await conn.fetchrow("SELECT version, snapshot FROM patient_snapshots WHERE empi_id = $1", patient.empi_id)
    if patient.version is not None and (row is None or patient.version >= row["version"]):
        await remember_patient(conn, patient)
        return patient
    if row is None:
        return patient
    snapshot = row["snapshot"]
    if isinstance(snapshot, str):
        return PatientRef.model_validate_json(snapshot)
    return PatientRef.model_validate(snapshot)


async def freshen(conn: asyncpg.Connection, data: EventData) -> EventData:
    """`data` with every patient it carries replaced by the newest snapshot seen (newest_patient), so a
    late order, appointment or exam event never brings back an old name or a merged-away identity."""
    updates: dict[str, Any] = {}
    for name in ("patient", "surviving"):
        ref = getattr(data, name, None)
        if isinstance(ref, PatientRef):
            newest = await newest_patient(conn, ref)
            if newest is not ref:
                updates[name] = newest
    appointment = getattr(data, "appointment", None)
    if appointment is not None and isinstance(getattr(appointment, "patient", None), PatientRef):
        newest = await newest_patient(conn, appointment.patient)
        if newest is not appointment.patient:
            updates["appointment"] = appointment.model_copy(update={"patient": newest})
    return data.model_copy(update=updates) if updates else data


async def remember_patient_event(conn: asyncpg.Connection, data: EventData) -> None:
    """What a patient event says is the newest of whom: a merge makes the survivor the newest snapshot of
    every merged EMPI id too (at their own new version)."""
    if isinstance(data, PatientRegistered | PatientUpdated):
        await remember_patient(conn, data.patient)
    elif isinstance(data, PatientMerged):
        await remember_patient(conn, data.surviving)
        for empi_id in data.merged_empi_ids:
            await remember_patient(conn, data.surviving, as_empi_id=empi_id,
                                   version=data.merged_versions.get(empi_id))


async def patient_is_current(conn: asyncpg.Connection, patient: PatientRef) -> bool:
    """Whether `patient` is at least as new as every snapshot of them this service has seen (it is then
    remembered). One without a version is never current: it may only fill gaps (merge_patient with
    current=False). Events reach handlers freshened (see freshen), so a stale one is rare here."""
    if patient.version is None:
        return False
    row = await conn.fetchval("SELECT version FROM patient_snapshots WHERE empi_id = $1", patient.empi_id)
    if row is not None and row > patient.version:
        return False
    await remember_patient(conn, patient)
    return True


def merge_patient(known: Mapping[str, Any] | None, incoming: Mapping[str, Any], *, current: bool) -> dict[str, Any]:
    """The copy to keep: a current snapshot's values win where it has one; otherwise (older or
    unversioned) it only fills what the copy lacks. Empty values never replace known ones."""
    merged = dict(known or {})
    renamed = current and not _empty("name", incoming.get("name")) and incoming.get("name") != merged.get("name")
    if renamed and _empty("name_latin", incoming.get("name_latin")):
        merged.pop("name_latin", None)  # the Latin form was of the old name
    for name, value in incoming.items():
        if name not in merged:
            merged[name] = value
        elif not _empty(name, value) and (current or _empty(name, merged[name])):
            merged[name] = value
    return merged


def _empty(name: str, value: Any) -> bool:
    return value is None or value == "" or (name == "sex" and value == "U")
