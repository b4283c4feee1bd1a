"""From an accepted print job to a stored, matched film, with its events.

    N-ACTION print ──accept()──► spool + films row (status 'spooled') ── answer the modality
    renderer task ──► render (thread) ──► OCR of every image box (thread) ──► decide (matching.py)
                  ──► film.dcm with the decided identity + PNG stored ──► films row, film.printed,
                      film.matched, archive queue — one transaction

A film keeps its spool key until all of that committed, so a crash anywhere means the job is
simply done again (object keys derive from the film id: rewriting them is harmless).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
from imaging_common import events
from imaging_common.events.types import FilmPrinted
from imaging_common.waiting import woken

from print_scp.adapters import film_decisions, spool_store
from print_scp.adapters.ocr_tesseract import OcrUnavailable, read_text
from print_scp.domain import films_store
from print_scp.domain.film_output import RenderedFilm, film_dicom, render_job
from print_scp.domain.matching import KnownStudy, MatchDecision, Source, StudyIndex, decide
from print_scp.domain.print_session import FilmJob
from print_scp.domain.storage import FilmStore, ObjectNotFound
from print_scp.settings import Settings

log = logging.getLogger(__name__)
SOURCE = film_decisions.SOURCE


def film_keys(film_id: str, printed_at: datetime) -> dict[str, str]:
    day = printed_at.astimezone(UTC).strftime("%Y/%m/%d")
    return {"dicom": f"films/{day}/{film_id}.dcm", "png": f"films/{day}/{film_id}.png"}


# A films row is committed while its print's images are still being made durable (dicom_scp._n_action);
# an image missing for longer than this means the print was never answered (a crash): the film fails.
SPOOL_GRACE_SECONDS = 60.0


class FilmPipeline:
    def __init__(self, *, pool: asyncpg.Pool, store: FilmStore, settings: Settings) -> None:
        self.pool, self.store, self.settings = pool, store, settings
        self._wake = asyncio.Event()
        self.processed = 0

    async def accept(self, jobs: list[FilmJob], *, session_id: str) -> None:
        """Make the jobs durable; only then may the modality be told they printed."""
        spooled = await spool_store.put_jobs(self.store, jobs)
        async with self.pool.acquire() as conn:  # one statement, one commit: the print is durable
            await films_store.insert_printed(conn, session_id=session_id, jobs=jobs, spooled=spooled)
        # No wake-up here: the print SCP wakes the renderer when the association ends, so rendering does
        # not slow down the rest of it (or the next film's pixels); the renderer's poll finds films of
        # an association that stays open.

    async def respool(self, jobs: list[FilmJob]) -> None:
        """Images whose write at their N-SET failed (spool_key None after AssociationSpool.ready) are
        written now and the films rows' manifests name them; before the print is answered."""
        spooled = await spool_store.put_jobs(self.store, jobs)
        async with self.pool.acquire() as conn, conn.transaction():
            for job in jobs:
                await films_store.set_spool_manifest(conn, job.film_id, spooled[job.film_id][1])

    async def run(self) -> None:
        """The renderer: drains spooled films, then sleeps until woken (or polls, for other replicas)."""
        while True:
            self._wake.clear()  # before draining: a job accepted meanwhile sets it again
            try:
                while await self.process_one() or await self.rewrite_one():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:  # a broken film must not stop the others; it was marked failed or stays spooled
                log.exception("film pipeline error")
                await asyncio.sleep(1.0)
            await woken(self._wake, 2.0)

    async def process_one(self) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await films_store.claim_to_render(conn)
            if row is None:
                return False
            film_id = str(row["id"])
            # Outside the try below: a store that is briefly unreachable must leave the film spooled
            # (the transaction rolls back and the run loop retries), never mark it failed for good.
            spooled = await spool_store.fetch(self.store, row["spool_key"], row["spool_manifest"])
            if spooled is None and await films_store.created_within(conn, film_id, SPOOL_GRACE_SECONDS):
                return False  # its print is being answered right now (another replica's): look again later
            try:
                if spooled is None:  # gone for good (a crash before its print was answered)
                    raise ObjectNotFound(row["spool_key"])
                job = spool_store.decode(spooled)
                rendered = await asyncio.to_thread(render_job, job, dpi=self.settings.print_render_dpi,
                                                   preview_max=self.settings.print_preview_max)
            except Exception as exc:  # undecodable spool or a render bug: keep the row, say why
                log.exception("film %s could not be rendered", film_id)
                await films_store.mark_failed(conn, film_id, f"{type(exc).__name__}: {exc}")
                await films_store.clear_spool(conn, film_id)
                return True
            decision = await self.decide(conn, job, rendered)
            await self._store(conn, job, rendered, decision)
            await film_decisions.record(conn, film_id, decision, previous=None)
            await films_store.clear_spool(conn, film_id)
        await spool_store.remove_job(self.store, row["spool_key"], spooled)
        self.processed += 1
        return True

    def wake(self) -> None:
        """Look for work now (a film re-decided in this process, say)."""
        self._wake.set()

    async def rewrite_one(self) -> bool:
        """One re-decided film's DICOM rewritten with the identity its row now has (film_decisions)."""
        async with self.pool.acquire() as conn, conn.transaction():
            replaced = await film_decisions.rewrite_stale(conn, self.store, self.settings)
        if replaced is None:
            return False
        try:
            await self.store.delete(replaced)
        except Exception:  # an orphan object, never referenced again: not worth failing for
            log.warning("film object %s not deleted", replaced, exc_info=True)
        return True

    async def _store(self, conn: asyncpg.Connection, job: FilmJob, rendered: RenderedFilm,
                     decision: MatchDecision) -> None:
        keys = film_keys(job.film_id, job.printed_at)
        matched = decision.study.study_instance_uid if decision.status == "matched" and decision.study else None
        who = await film_decisions.identity(conn, matched, self.settings)
        dicom, sop_uid = await asyncio.to_thread(film_dicom, job, rendered.film, who)
        await self.store.put(keys["dicom"], dicom, "application/dicom")
        await self.store.put(keys["png"], rendered.png, "image/png")
        await films_store.mark_stored(conn, job.film_id, dicom_key=keys["dicom"], png_key=keys["png"],
                                   sop_uid=sop_uid, width=rendered.width, height=rendered.height)
        await events.publish(conn, FilmPrinted(
            film_id=job.film_id, calling_ae_title=job.calling_ae, film_size=job.film.get("FilmSizeID"),
            image_count=len(job.images), copies=int(job.session.get("NumberOfCopies") or 1),
            printed_at=job.printed_at, study_instance_uid=job.study_uids[0] if job.study_uids else None,
        ), source=SOURCE, subject=job.film_id)

    async def decide(self, conn: asyncpg.Connection, job: FilmJob, rendered: RenderedFilm) -> MatchDecision:
        """WS/T 597 5.4 on all the evidence: the UIDs sent, every image box's text, the annotations."""
        uid_studies = await films_store.studies_by_uid(conn, job.study_uids)
        cancelled = await films_store.cancelled_uids(conn, job.study_uids)
        window = await films_store.studies_around(conn, job.printed_at, self.settings.print_ocr_window_hours)
        return await self.decide_on(rendered, job.annotations, job.study_uids, uid_studies, window, cancelled)

    async def decide_on(self, rendered: RenderedFilm, annotations: list[str], sent_uids: list[str],
                        uid_studies: dict[str, KnownStudy], window: list[KnownStudy],
                        cancelled: Sequence[str] = ()) -> MatchDecision:
        """The decision once the candidate studies are known (the benchmark calls it without a database)."""
        s = self.settings
        index = StudyIndex([*window, *uid_studies.values()], patient_id_pattern=s.print_patient_id_pattern,
                           accession_pattern=s.print_accession_pattern)
        sources = [Source("annotation", text) for text in annotations if text.strip()]
        try:
            texts = await asyncio.to_thread(self._ocr_boxes, rendered)
        except OcrUnavailable as exc:
            return MatchDecision("review", "study-uid" if sent_uids else "ocr", None, 0.0, {
                "reason": "ocr-failed", "explanation": "the film's text could not be read to check it",
                "error": str(exc), "sent_study_uids": sent_uids})
        sources += [Source(f"box {position}", text) for position, text in texts]
        decision = decide(sent_uids, uid_studies, [index.read(src) for src in sources],
                          studies_considered=len(index.studies), cancelled_uids=cancelled)
        decision.detail["ocr_text"] = {src.name: src.text[:500] for src in sources if src.text.strip()}
        return decision

    def _ocr_boxes(self, rendered: RenderedFilm) -> list[tuple[int, str]]:
        """Every image box read on its own (a film may hold several patients' images)."""
        return [(position, read_text([image], binary=self.settings.print_tesseract))
                for position, image in rendered.ocr_images]
