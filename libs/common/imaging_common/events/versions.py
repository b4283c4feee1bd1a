"""Per-subject versions: events about an order, an appointment or a patient apply in version order.

Events reach a service out of order (two replicas, a retry queue, a relay that re-sends): a late
`order.created` must not resurrect an order whose `order.cancelled` came first, and an old patient
snapshot must not overwrite a newer one. So every such event names what it is a snapshot of, as
(subject key, version) pairs (`EventData.subject_versions()`):

- the producer numbers them, in the transaction that publishes: `await next_version(conn, key)`
  (patients use the EMPI person's own version);
- the consumer (`EventConsumer`) calls `claim()` before the handler: an event that is not newer than
  what was applied for any of its subjects is acknowledged as "stale" and never reaches the handler;
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

from imaging_common.events.types import PatientRef


async def next_version(conn: asyncpg.Connection, key: str) -> int:
    """The next version of `key` (1 the first time), inside the producer's open transaction."""
    return int(await conn.fetchval(
        "INSERT INTO published_versions (subject_key, version) VALUES ($1, 1) ON CONFLICT (subject_key) "
        "DO UPDATE SET version = published_versions.version + 1 RETURNING version", key,
    ))


async def claim(conn: asyncpg.Connection, versions: Iterable[tuple[str, int]]) -> bool:
    """Record the versions that are newer than the applied ones; False when none of them is.

    An event without versions is always applied (True). Equal versions are not newer: the same
    snapshot applied twice (a duplicate published under a new event id) changes nothing.
    """
    pairs = list(versions)
    if not pairs:
        return True
    newer = False
    for key, version in sorted(pairs):  # a fixed order, so two replicas lock rows alike
        won = await conn.fetchval(
            "INSERT INTO subject_versions (subject_key, version) VALUES ($1, $2) ON CONFLICT (subject_key) "
            "DO UPDATE SET version = EXCLUDED.version, applied_at = now() "
            "WHERE subject_versions.version < EXCLUDED.version RETURNING true", key, version,
        )
        newer = newer or bool(won)
    return newer


async def applied_version(conn: asyncpg.Connection, key: str) -> int | None:
    """The newest version applied for `key`, or None."""
    return await conn.fetchval("SELECT version FROM subject_versions WHERE subject_key = $1", key)


async def patient_is_current(conn: asyncpg.Connection, patient: PatientRef) -> bool:
    """Whether `patient` is at least as new as every snapshot of them this service applied.

    A versioned snapshot that is records its version. One without a version is never current: it
    may only fill gaps (merge_patient with current=False).
    """
    if patient.version is None:
        return False
    key = f"patient:{patient.empi_id}"
    known = await applied_version(conn, key)
    if known is not None and known > patient.version:
        return False
    if known is None or known < patient.version:
        await claim(conn, [(key, patient.version)])
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
