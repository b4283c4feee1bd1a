"""A film's match decision, applied everywhere it shows, in the caller's transaction:

    the films row (status, rule, evidence, when) ─ film.matched / film.unmatched on the bus ─
    the archive queue ─ the film's DICOM identity (rewritten by the renderer: `rewrite_stale`)

The renderer decides a new film (film_pipeline, `record`); staff decide by hand (http_films) and
events from other services re-decide films they contradict (adapters/events.py: order cancelled, patients
merged or corrected) through `apply`. A re-decided film's DICOM is marked stale in the same
transaction; until the renderer has rewritten it, it is neither served nor sent to the archive, so
a film's DICOM never names a patient its row does not.
"""

from __future__ import annotations

import asyncio
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from imaging_common import events
from imaging_common.events.types import FilmMatched, FilmUnmatched, PatientRef

from print_scp.adapters import archive
from print_scp.domain import films_store
from print_scp.domain.film_output import FilmIdentity, identity_of, reidentify
from print_scp.domain.matching import MatchDecision
from print_scp.domain.storage import FilmStore
from print_scp.settings import Settings

SOURCE = "/imaging/print_scp"


async def identity(conn: asyncpg.Connection, study_uid: str | None, settings: Settings) -> FilmIdentity | None:
    """What a film matched to that study carries in its DICOM (None: unmatched, no one's identity)."""
    if study_uid is None:
        return None
    record = await films_store.study_record(conn, study_uid)
    if record is None:
        return None
    return identity_of(record, issuer=settings.print_issuer_of_patient_id, tz=ZoneInfo(settings.print_timezone))


async def _patient_ref(conn: asyncpg.Connection, study_uid: str | None, fallback: dict[str, Any]) -> PatientRef:
    record = await films_store.study_record(conn, study_uid) if study_uid else None
    return PatientRef.model_validate(record["patient"] if record and record["patient"] else fallback)


async def record(conn: asyncpg.Connection, film_id: str, decision: MatchDecision, *, previous: Any,
                 matched_by: str | None = None) -> None:
    """Write the decision to the films row and tell the others: film.matched when it attaches the film,
    film.unmatched when a film attached to a study no longer is. `previous` is the row before."""
    was = previous["match_status"] == "matched" if previous is not None else False
    moved = was and (decision.study is None or decision.study.study_instance_uid != previous["study_instance_uid"])
    if moved:
        await events.publish(conn, FilmUnmatched(
            film_id=film_id, accession_number=previous["accession_number"],
            patient=await _patient_ref(conn, previous["study_instance_uid"], {
                "empi_id": previous["empi_id"], "patient_id": previous["patient_id"],
                "name": previous["patient_name"] or ""}),
            reason=str(decision.detail.get("reason") or decision.method or "re-decided"),
        ), source=SOURCE, subject=film_id)
    await films_store.set_match(conn, film_id, status=decision.status, method=decision.method,
                             confidence=decision.confidence, detail=decision.detail, study=decision.study,
                             matched_by=matched_by)
    if decision.status == "matched" and decision.study is not None:
        if not was or moved:  # the same study with a corrected identity is no news to consumers
            await events.publish(conn, FilmMatched(
                film_id=film_id, patient=await _patient_ref(conn, decision.study.study_instance_uid, {
                    "empi_id": decision.study.empi_id, "patient_id": decision.study.patient_id,
                    "name": decision.study.patient_name}),
                accession_number=decision.study.accession_number,
                study_instance_uid=decision.study.study_instance_uid, method=decision.method or "manual",
                confidence=decision.confidence, matched_by=matched_by,
            ), source=SOURCE, subject=film_id)
        if previous is None:  # a new film: its DICOM was just written with this identity
            await archive.queue_film(conn, film_id)
    elif was:
        await archive.cancel_film(conn, film_id)


async def apply(conn: asyncpg.Connection, film_id: str, decision: MatchDecision, *,
                matched_by: str | None = None) -> None:
    """Re-decide a film: `record` it, and mark its DICOM stale when it was already stored, so the
    renderer rewrites it with the identity decided (`rewrite_stale`) before anyone is sent it."""
    row = await films_store.film_record(conn, film_id, lock=True)
    if row is None:
        raise LookupError(film_id)
    await record(conn, film_id, decision, previous=row, matched_by=matched_by)
    if row["dicom_key"] is not None:
        await films_store.mark_dicom_stale(conn, film_id)
        await archive.cancel_film(conn, film_id)  # not the copy with the identity it had


async def rewrite_stale(conn: asyncpg.Connection, store: FilmStore, settings: Settings) -> str | None:
    """One film whose DICOM no longer says what its row does: rewritten with the row's identity (new
    Series and SOP Instance UIDs, under a new key), then queued for the archive when matched. Returns
    the replaced key for the caller to delete once committed (deleting before could leave the row
    pointing at nothing); None when no film was stale."""
    row = await films_store.claim_stale(conn)
    if row is None:
        return None
    film_id, old_key = str(row["id"]), row["dicom_key"]
    who = await identity(conn, row["study_instance_uid"] if row["match_status"] == "matched" else None, settings)
    dicom, sop_uid = await asyncio.to_thread(reidentify, await store.get(old_key), who)
    new_key = f"{old_key.rsplit('/', 1)[0]}/{film_id}.{sop_uid}.dcm"
    await store.put(new_key, dicom, "application/dicom")
    await films_store.set_dicom(conn, film_id, dicom_key=new_key, sop_uid=sop_uid)
    await films_store.mark_dicom_current(conn, film_id)
    if who is not None:
        await archive.queue_film(conn, film_id)
    return str(old_key)


def evidence(row: Any) -> dict[str, Any]:
    """The decision detail stored on a films row."""
    return films_store.as_dict(row["match_detail"])
