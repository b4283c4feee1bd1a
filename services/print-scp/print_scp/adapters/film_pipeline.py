"""From an accepted print job to a stored, matched film, with its events.

    N-ACTION print ──accept()──► spool object + films row (status 'spooled')  ── answer the modality
    renderer task ──► render (thread) ──► DICOM + PNG stored ──► match (UID, else OCR in a thread)
                  ──► films row updated, film.printed + film.matched in the outbox, one transaction

A film keeps its spool key until all of that committed, so a crash anywhere means the job is
simply done again (object keys derive from the film id: rewriting them is harmless).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime

import asyncpg
from imaging_common import events
from imaging_common.events.types import FilmMatched, FilmPrinted, PatientRef

from print_scp.adapters import films_db, spool_store
from print_scp.adapters.ocr_tesseract import OcrUnavailable, read_text
from print_scp.domain.film_output import RenderedFilm, render_job
from print_scp.domain.matching import KnownStudy, MatchDecision, match_by_ocr, match_by_study_uid
from print_scp.domain.print_session import FilmJob
from print_scp.domain.storage import FilmStore, ObjectNotFound
from print_scp.settings import Settings

log = logging.getLogger(__name__)
SOURCE = "/imaging/print_scp"


def film_keys(film_id: str, printed_at: datetime) -> dict[str, str]:
    day = printed_at.astimezone(UTC).strftime("%Y/%m/%d")
    return {"dicom": f"films/{day}/{film_id}.dcm", "png": f"films/{day}/{film_id}.png"}


async def patient_ref(conn: asyncpg.Connection, study: KnownStudy) -> PatientRef:
    raw = await conn.fetchval("SELECT patient FROM studies WHERE study_instance_uid = $1", study.study_instance_uid)
    data = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
    return PatientRef.model_validate(data or {"empi_id": study.empi_id, "patient_id": study.patient_id,
                                              "name": study.patient_name})


async def publish_match(conn: asyncpg.Connection, film_id: str, decision: MatchDecision,
                        matched_by: str | None = None) -> None:
    """Record the decision; announce film.matched when it attaches the film to a patient."""
    await films_db.set_match(conn, film_id, status=decision.status, method=decision.method,
                             confidence=decision.confidence, detail=decision.detail, study=decision.study,
                             matched_by=matched_by)
    if decision.status == "matched" and decision.study is not None:
        await events.publish(conn, FilmMatched(
            film_id=film_id, patient=await patient_ref(conn, decision.study),
            accession_number=decision.study.accession_number,
            study_instance_uid=decision.study.study_instance_uid, method=decision.method or "manual",
            confidence=decision.confidence, matched_by=matched_by,
        ), source=SOURCE, subject=film_id)


class FilmPipeline:
    def __init__(self, *, pool: asyncpg.Pool, store: FilmStore, settings: Settings) -> None:
        self.pool, self.store, self.settings = pool, store, settings
        self._wake = asyncio.Event()
        self.processed = 0

    async def accept(self, jobs: list[FilmJob], *, session_id: str) -> None:
        """Make the jobs durable; only then may the modality be told they printed."""
        keys = await spool_store.put_jobs(self.store, jobs)
        async with self.pool.acquire() as conn, conn.transaction():
            await films_db.insert_session(conn, session_id=session_id, job=jobs[0])
            for job in jobs:
                await films_db.insert_film(conn, session_id=session_id, job=job, spool_key=keys[job.film_id])
        self._wake.set()

    async def run(self) -> None:
        """The renderer: drains spooled films, then sleeps until woken (or polls, for other replicas)."""
        while True:
            self._wake.clear()  # before draining: a job accepted meanwhile sets it again
            try:
                while await self.process_one():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:  # a broken film must not stop the others; it was marked failed or stays spooled
                log.exception("film pipeline error")
                await asyncio.sleep(1.0)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=5.0)
            except TimeoutError:
                pass

    async def process_one(self) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """SELECT id, spool_key, status, printed_at FROM films WHERE spool_key IS NOT NULL
                   ORDER BY printed_at FOR UPDATE SKIP LOCKED LIMIT 1""")
            if row is None:
                return False
            film_id = str(row["id"])
            # Outside the try below: a store that is briefly unreachable must leave the film spooled
            # (the transaction rolls back and the run loop retries), never mark it failed for good.
            spooled = await spool_store.fetch(self.store, row["spool_key"])
            try:
                if spooled is None:  # gone for good
                    raise ObjectNotFound(row["spool_key"])
                job = spool_store.decode(spooled)
                rendered = await asyncio.to_thread(render_job, job, dpi=self.settings.print_render_dpi,
                                                   preview_max=self.settings.print_preview_max)
            except Exception as exc:  # undecodable spool or a render bug: keep the row, say why
                log.exception("film %s could not be rendered", film_id)
                await films_db.mark_failed(conn, film_id, f"{type(exc).__name__}: {exc}")
                await conn.execute("UPDATE films SET spool_key = NULL WHERE id = $1", film_id)
                return True
            await self._store(conn, job, rendered)
            decision = await self.decide(conn, job, rendered)
            await publish_match(conn, film_id, decision)
            await conn.execute("UPDATE films SET spool_key = NULL WHERE id = $1", film_id)
        await spool_store.remove_job(self.store, row["spool_key"])
        self.processed += 1
        return True

    async def _store(self, conn: asyncpg.Connection, job: FilmJob, rendered: RenderedFilm) -> None:
        keys = film_keys(job.film_id, job.printed_at)
        await self.store.put(keys["dicom"], rendered.dicom, "application/dicom")
        await self.store.put(keys["png"], rendered.png, "image/png")
        await films_db.mark_stored(conn, job.film_id, dicom_key=keys["dicom"], png_key=keys["png"],
                                   sop_uid=rendered.sop_instance_uid, width=rendered.width, height=rendered.height)
        await events.publish(conn, FilmPrinted(
            film_id=job.film_id, calling_ae_title=job.calling_ae, film_size=job.film.get("FilmSizeID"),
            image_count=len(job.images), copies=int(job.session.get("NumberOfCopies") or 1),
            printed_at=job.printed_at, study_instance_uid=job.study_uids[0] if job.study_uids else None,
        ), source=SOURCE, subject=job.film_id)

    async def decide(self, conn: asyncpg.Connection, job: FilmJob, rendered: RenderedFilm) -> MatchDecision:
        """WS/T 597 5.4: method 1 when a Study Instance UID came, method 2 (OCR) otherwise."""
        by_uid = match_by_study_uid(job.study_uids, await films_db.studies_by_uid(conn, job.study_uids))
        if by_uid is not None:
            return by_uid
        studies = await films_db.studies_around(conn, job.printed_at, self.settings.print_ocr_window_hours)
        return await self.ocr_match(rendered, job.annotations, studies)

    async def ocr_match(self, rendered: RenderedFilm, annotations: list[str],
                        studies: list[KnownStudy]) -> MatchDecision:
        s = self.settings

        def decide(text: str) -> MatchDecision:
            return match_by_ocr(text, studies, patient_id_pattern=s.print_patient_id_pattern,
                                accession_pattern=s.print_accession_pattern)

        annotation_text = "\n".join(annotations)  # annotation boxes carry text as text: no OCR needed
        if annotation_text.strip():
            by_annotation = decide(annotation_text)
            if by_annotation.status == "matched":
                by_annotation.detail["source"] = "annotation"
                return by_annotation
        try:
            text = await asyncio.to_thread(read_text, rendered.ocr_images, binary=s.print_tesseract,
                                           enough=lambda t: decide(annotation_text + "\n" + t).status == "matched")
        except OcrUnavailable as exc:
            return MatchDecision("review", "ocr", None, 0.0, {"reason": "ocr-failed", "error": str(exc)})
        decision = decide(annotation_text + "\n" + text)
        decision.detail["ocr_text"] = text[:2000]
        return decision
