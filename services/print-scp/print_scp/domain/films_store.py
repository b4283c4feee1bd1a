"""The films and the studies they match, as stored in the print_scp schema: studies, film sessions, films
(migrations 0002). Adapters (the print pipeline, the decisions, the APIs) call these; they write no SQL."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from imaging_common.events import versions

from print_scp.domain.matching import KnownStudy
from print_scp.domain.print_session import FilmJob

FILM_COLUMNS = """id, session_id, film_box_uid, print_job_uid, status, failure, printed_at, calling_ae_title, copies,
    priority, medium_type, destination, film_size, orientation, display_format, session_label, owner_id,
    image_count, collated, sent_study_uids, dicom_key, png_key, sop_instance_uid, width, height, match_status,
    match_method, match_confidence, match_detail, study_instance_uid, accession_number, patient_id, empi_id,
    patient_name, matched_by, matched_at, handed_over_at, handed_over_by"""


def known_study(row: asyncpg.Record) -> KnownStudy:
    return KnownStudy(row["study_instance_uid"], row["accession_number"], row["patient_id"], row["empi_id"],
                      row["patient_name"])


_SESSION_VALUES = "($1, $2, $3, $4, $5, $6::jsonb, $7)"
_FILM_COLUMNS = """id, session_id, film_box_uid, print_job_uid, printed_at, calling_ae_title, copies, priority,
    medium_type, destination, film_size, orientation, display_format, session_label, owner_id, image_count,
    collated, sent_study_uids, spool_key, spool_manifest"""


def _film_args(session_id: str, job: FilmJob, spool_key: str, manifest: bytes) -> list[Any]:
    s, f = job.session, job.film
    return [job.film_id, session_id, job.film_box_uid, job.job_uid, job.printed_at, job.calling_ae,
            s["NumberOfCopies"], s["PrintPriority"], s["MediumType"], s["FilmDestination"], f["FilmSizeID"],
            f["FilmOrientation"], f["ImageDisplayFormat"], s.get("FilmSessionLabel"), s.get("OwnerID"),
            len(job.images), job.collated, job.study_uids, spool_key, manifest]


async def insert_printed(conn: asyncpg.Connection, *, session_id: str, jobs: list[FilmJob],
                         spooled: dict[str, tuple[str, bytes]]) -> None:
    """The session (once) and each printed film with its spool manifest, in one statement: the commit that
    makes a print durable is the one round trip the modality waits for (an N-ACTION's answer waits on it)."""
    first = jobs[0]
    args: list[Any] = [session_id, first.session_uid, first.calling_ae, first.called_ae, first.peer,
                       json.dumps(first.session), first.study_uids]
    rows = []
    for job in jobs:
        key, manifest = spooled[job.film_id]
        values = _film_args(session_id, job, key, manifest)
        rows.append("(" + ", ".join(f"${len(args) + i + 1}" for i in range(len(values))) + ")")
        args += values
    await conn.execute(
        f"""WITH session AS (
                INSERT INTO film_sessions (id, sop_instance_uid, calling_ae_title, called_ae_title, peer, attributes,
                    study_uids) VALUES {_SESSION_VALUES} ON CONFLICT (id) DO NOTHING)
            INSERT INTO films ({_FILM_COLUMNS}) VALUES {", ".join(rows)}""", *args)


async def claim_spooled(conn: asyncpg.Connection) -> asyncpg.Record | None:
    """The oldest film waiting to be rendered, locked for this transaction (replicas skip it)."""
    return await conn.fetchrow(
        "SELECT id, spool_key FROM films WHERE status = 'spooled' ORDER BY printed_at FOR UPDATE SKIP LOCKED LIMIT 1")


async def mark_stored(conn: asyncpg.Connection, film_id: str, *, dicom_key: str, png_key: str, sop_uid: str,
                      width: int, height: int) -> None:
    await conn.execute(
        """UPDATE films SET status = 'stored', dicom_key = $2, png_key = $3, sop_instance_uid = $4, width = $5,
               height = $6 WHERE id = $1""", film_id, dicom_key, png_key, sop_uid, width, height)


async def mark_failed(conn: asyncpg.Connection, film_id: str, failure: str) -> None:
    await conn.execute("UPDATE films SET status = 'failed', failure = $2 WHERE id = $1", film_id, failure[:2000])


async def set_match(conn: asyncpg.Connection, film_id: str, *, status: str, method: str | None,
                    confidence: float | None, detail: dict[str, Any], study: KnownStudy | None,
                    matched_by: str | None = None) -> None:
    # clock_timestamp(): the moment of the decision, not the start of the (long: OCR) transaction
    await conn.execute(
        """UPDATE films SET match_status = $2, match_method = $3, match_confidence = $4, match_detail = $5::jsonb,
               study_instance_uid = $6, accession_number = $7, patient_id = $8, empi_id = $9, patient_name = $10,
               matched_by = $11, matched_at = CASE WHEN $2 = 'matched' THEN clock_timestamp() END
           WHERE id = $1""",
        film_id, status, method, confidence, json.dumps(detail, ensure_ascii=False, default=str),
        study.study_instance_uid if study else None, study.accession_number if study else None,
        study.patient_id if study else None, study.empi_id if study else None,
        study.patient_name if study else None, matched_by,
    )


async def studies_by_uid(conn: asyncpg.Connection, uids: list[str]) -> dict[str, KnownStudy]:
    """Known studies by UID, cancelled orders left out (a film never attaches to one)."""
    rows = await conn.fetch("SELECT * FROM studies WHERE study_instance_uid = ANY($1::text[]) "
                            "AND status <> 'cancelled'", uids)
    return {r["study_instance_uid"]: known_study(r) for r in rows}


async def cancelled_uids(conn: asyncpg.Connection, uids: list[str]) -> list[str]:
    rows = await conn.fetch("SELECT study_instance_uid FROM studies WHERE study_instance_uid = ANY($1::text[]) "
                            "AND status = 'cancelled'", uids)
    return [r["study_instance_uid"] for r in rows]


async def study_record(conn: asyncpg.Connection, study_uid: str) -> dict[str, Any] | None:
    """The study with its patient (PatientRef as JSON), for the identity a matched film carries."""
    row = await conn.fetchrow("SELECT * FROM studies WHERE study_instance_uid = $1", study_uid)
    if row is None:
        return None
    out = dict(row)
    out["patient"] = as_dict(row["patient"])
    return out


def as_dict(value: Any) -> dict[str, Any]:
    """A jsonb value as asyncpg hands it (text, or a dict when a codec is set) as a dict."""
    return json.loads(value) if isinstance(value, str) else dict(value or {})


async def set_dicom(conn: asyncpg.Connection, film_id: str, *, dicom_key: str, sop_uid: str) -> None:
    await conn.execute("UPDATE films SET dicom_key = $2, sop_instance_uid = $3 WHERE id = $1",
                       film_id, dicom_key, sop_uid)


async def study_by_accession(conn: asyncpg.Connection, accession: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM studies WHERE accession_number = $1", accession)


async def studies_around(conn: asyncpg.Connection, at: datetime, hours: int) -> list[KnownStudy]:
    """Studies active in the window before the print time (and a little after: clocks differ)."""
    rows = await conn.fetch(
        """SELECT * FROM studies WHERE status <> 'cancelled'
               AND coalesce(completed_at, started_at, ordered_at, updated_at) BETWEEN $1 AND $2""",
        at - timedelta(hours=hours), at + timedelta(hours=2))
    return [known_study(r) for r in rows]


async def upsert_study(conn: asyncpg.Connection, *, study_uid: str, accession: str, patient: dict[str, Any],
                       order_id: str | None = None, modality: str | None = None, exam_name: str | None = None,
                       status: str | None = None, ordered_at: datetime | None = None,
                       started_at: datetime | None = None, completed_at: datetime | None = None,
                       current: bool = False) -> None:
    """Record what an event says of a study; its patient replaces the known one only when `current` (the
    newest snapshot of them, events.versions), otherwise it fills gaps."""
    order_uid = await conn.fetchval("SELECT study_instance_uid FROM studies WHERE accession_number = $1", accession)
    if order_uid is not None and order_uid != study_uid:
        # The modality made its own Study UID for this accession: the accession's study stays the one
        # registration assigned (films naming the other UID go to review, never to a guess).
        study_uid = order_uid
    known = await conn.fetchval("SELECT patient FROM studies WHERE study_instance_uid = $1 FOR UPDATE", study_uid)
    if known is not None:
        patient = versions.merge_patient(as_dict(known), patient, current=current)
    await conn.execute(
        """INSERT INTO studies (study_instance_uid, accession_number, order_id, empi_id, patient_id, patient_name,
               patient, modality, exam_name, status, ordered_at, started_at, completed_at)
           VALUES ($1,$2,$3,$4,$5,$6,$7::jsonb,$8,$9,coalesce($10,'ordered'),$11,$12,$13)
           ON CONFLICT (study_instance_uid) DO UPDATE SET
               accession_number = EXCLUDED.accession_number,
               order_id = coalesce(EXCLUDED.order_id, studies.order_id),
               empi_id = EXCLUDED.empi_id, patient_id = EXCLUDED.patient_id, patient_name = EXCLUDED.patient_name,
               patient = EXCLUDED.patient, modality = coalesce(EXCLUDED.modality, studies.modality),
               exam_name = coalesce(EXCLUDED.exam_name, studies.exam_name),
               status = CASE WHEN studies.status = 'cancelled' THEN 'cancelled' ELSE coalesce($10, studies.status) END,
               ordered_at = coalesce(EXCLUDED.ordered_at, studies.ordered_at),
               started_at = coalesce(EXCLUDED.started_at, studies.started_at),
               completed_at = coalesce(EXCLUDED.completed_at, studies.completed_at),
               updated_at = now()""",
        study_uid, accession, order_id, patient["empi_id"], patient["patient_id"], patient["name"],
        json.dumps(patient, ensure_ascii=False, default=str), modality, exam_name, status, ordered_at,
        started_at, completed_at,
    )


async def film(conn: asyncpg.Connection, film_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {FILM_COLUMNS} FROM films WHERE id = $1", film_id)


async def films_where(conn: asyncpg.Connection, *, patient_id: str | None = None, accession: str | None = None,
                      study_uid: str | None = None, empi_id: str | None = None, match_status: str | None = None,
                      limit: int = 100, offset: int = 0) -> tuple[list[asyncpg.Record], int]:
    clauses, args = ["status <> 'failed'"], []
    for column, value in (("patient_id", patient_id), ("accession_number", accession),
                          ("study_instance_uid", study_uid), ("empi_id", empi_id), ("match_status", match_status)):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    where = " AND ".join(clauses)
    count = await conn.fetchval(f"SELECT count(*) FROM films WHERE {where}", *args)
    rows = await conn.fetch(f"SELECT {FILM_COLUMNS} FROM films WHERE {where} ORDER BY printed_at DESC "
                            f"LIMIT {int(limit)} OFFSET {int(offset)}", *args)
    return rows, int(count)


# ---- what the staff and self-service APIs read and record ------------------------------------------

async def film_record(conn: asyncpg.Connection, film_id: str, *, lock: bool = False) -> asyncpg.Record | None:
    """The whole films row (archive columns too); `lock` waits for a send of this film in flight."""
    return await conn.fetchrow("SELECT * FROM films WHERE id = $1" + (" FOR UPDATE" if lock else ""), film_id)


async def lock_film(conn: asyncpg.Connection, film_id: str) -> None:
    await conn.execute("SELECT 1 FROM films WHERE id = $1 FOR UPDATE", film_id)


async def dicom_stale(conn: asyncpg.Connection, film_id: str) -> bool:
    """The film was matched anew and its DICOM is still being rewritten with that identity."""
    return bool(await conn.fetchval("SELECT dicom_stale FROM films WHERE id = $1", film_id))


async def hand_over(conn: asyncpg.Connection, film_id: str, by: str) -> None:
    """Recorded as handed over (the first time counts)."""
    await conn.execute("UPDATE films SET handed_over_at = coalesce(handed_over_at, now()), handed_over_by = "
                       "coalesce(handed_over_by, $2) WHERE id = $1", film_id, by)


async def matched_film_count(conn: asyncpg.Connection, accession: str) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM films WHERE accession_number = $1 AND match_status = "
                                   "'matched' AND status = 'stored'", accession))


async def matched_films(conn: asyncpg.Connection, accession: str, empi_id: str) -> list[asyncpg.Record]:
    """The stored films matched to the patient's study, oldest first (what a share or a slip shows)."""
    return await conn.fetch(
        """SELECT id, patient_id, patient_name, copies, film_size, display_format, printed_at, handed_over_at
           FROM films
           WHERE accession_number = $1 AND empi_id = $2 AND match_status = 'matched' AND status = 'stored'
           ORDER BY printed_at""", accession, empi_id)


async def matched_film_image(conn: asyncpg.Connection, film_id: str, accession: str,
                             empi_id: str) -> asyncpg.Record | None:
    """png_key and patient of one stored film matched to the patient's study; None when it is not one."""
    return await conn.fetchrow("SELECT png_key, patient_id FROM films WHERE id = $1 AND accession_number = $2 "
                               "AND empi_id = $3 AND match_status = 'matched' AND status = 'stored'",
                               film_id, accession, empi_id)


async def hand_over_matched(conn: asyncpg.Connection, film_ids: list[str], accession: str, empi_id: str,
                            by: str) -> list[asyncpg.Record]:
    """Those of `film_ids` matched to the patient's study, recorded as handed over; the rows changed."""
    return await conn.fetch(
        """UPDATE films SET handed_over_at = coalesce(handed_over_at, now()),
               handed_over_by = coalesce(handed_over_by, $4)
           WHERE id = ANY($3::uuid[]) AND accession_number = $1 AND empi_id = $2 AND match_status = 'matched'
               AND status = 'stored'
           RETURNING id, patient_id, handed_over_at, handed_over_by""",
        accession, empi_id, film_ids, by)


# ---- the renderer's spool and rewrites -------------------------------------------------------------

async def set_spool_manifest(conn: asyncpg.Connection, film_id: str, manifest: Any) -> None:
    await conn.execute("UPDATE films SET spool_manifest = $2 WHERE id = $1", film_id, manifest)


async def claim_to_render(conn: asyncpg.Connection) -> asyncpg.Record | None:
    """The oldest film with a spool, locked for this transaction (replicas skip it)."""
    return await conn.fetchrow(
        """SELECT id, spool_key, spool_manifest, status, printed_at FROM films WHERE spool_key IS NOT NULL
           ORDER BY printed_at FOR UPDATE SKIP LOCKED LIMIT 1""")


async def created_within(conn: asyncpg.Connection, film_id: str, seconds: float) -> bool:
    """The film's row is younger than `seconds` (its print may still be being answered)."""
    return bool(await conn.fetchval("SELECT created_at > now() - make_interval(secs => $2) FROM films WHERE id = $1",
                                    film_id, seconds))


async def clear_spool(conn: asyncpg.Connection, film_id: str) -> None:
    await conn.execute("UPDATE films SET spool_key = NULL, spool_manifest = NULL WHERE id = $1", film_id)


async def spooled(conn: asyncpg.Connection) -> dict[str, Any]:
    """Every film's spool key still referenced, with its manifest."""
    rows = await conn.fetch("SELECT spool_key, spool_manifest FROM films WHERE spool_key IS NOT NULL")
    return {r["spool_key"]: r["spool_manifest"] for r in rows}


async def mark_dicom_stale(conn: asyncpg.Connection, film_id: str) -> None:
    await conn.execute("UPDATE films SET dicom_stale = true WHERE id = $1", film_id)


async def claim_stale(conn: asyncpg.Connection) -> asyncpg.Record | None:
    """One film whose DICOM no longer says what its row does, locked (replicas skip it)."""
    return await conn.fetchrow("SELECT id, dicom_key, match_status, study_instance_uid FROM films "
                               "WHERE dicom_stale FOR UPDATE SKIP LOCKED LIMIT 1")


async def mark_dicom_current(conn: asyncpg.Connection, film_id: str) -> None:
    await conn.execute("UPDATE films SET dicom_stale = false WHERE id = $1", film_id)


# ---- the archive's queue ---------------------------------------------------------------------------

async def queue_for_archive(conn: asyncpg.Connection, film_id: str) -> bool:
    """Queued anew when the film is matched, its film.dcm stored and not awaiting a new identity."""
    queued = await conn.fetchval(
        """UPDATE films SET archive_status = 'pending', archive_attempts = 0, archive_next_at = now(),
                  archive_error = NULL
           WHERE id = $1 AND match_status = 'matched' AND dicom_key IS NOT NULL AND NOT dicom_stale
           RETURNING id""", film_id)
    return queued is not None


async def cancel_archive(conn: asyncpg.Connection, film_id: str) -> str | None:
    """A send not yet made is cancelled; the archive status after that."""
    await conn.execute("""UPDATE films SET archive_status = 'cancelled', archive_next_at = NULL
                          WHERE id = $1 AND archive_status IN ('pending', 'failed')""", film_id)
    return await conn.fetchval("SELECT archive_status FROM films WHERE id = $1", film_id)


async def claim_due_for_archive(conn: asyncpg.Connection) -> asyncpg.Record | None:
    """The film whose send is due first, locked (replicas skip it)."""
    return await conn.fetchrow(
        """SELECT id, dicom_key, archive_attempts FROM films
           WHERE archive_status = 'pending' AND archive_next_at <= now() AND NOT dicom_stale
           ORDER BY archive_next_at FOR UPDATE SKIP LOCKED LIMIT 1""")


async def archive_sent(conn: asyncpg.Connection, film_id: object, attempts: int, response_status: int | None) -> None:
    await conn.execute(
        """UPDATE films SET archive_status = 'sent', archive_attempts = $2, archive_next_at = NULL,
                  archive_error = NULL, archived_at = clock_timestamp(), archive_response_status = $3
           WHERE id = $1""", film_id, attempts, response_status)


async def archive_not_sent(conn: asyncpg.Connection, film_id: object, attempts: int, *, give_up: bool,
                           error: str | None, response_status: int | None, delay: float | None) -> None:
    """A failed send: tried again after `delay` seconds, or given up (status 'failed')."""
    # clock_timestamp(), not now(): the send took place after this transaction began.
    await conn.execute(
        """UPDATE films SET archive_status = $3, archive_attempts = $2, archive_error = $4,
                  archive_response_status = $5, archive_next_at = clock_timestamp() + make_interval(secs => $6)
           WHERE id = $1""",
        film_id, attempts, "failed" if give_up else "pending", error, response_status, delay)
