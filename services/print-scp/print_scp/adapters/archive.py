"""Matched films to the configured PACS (C-STORE), with retries and one status per film.

    pipeline (re)writes film.dcm ──queue_film()──► archive_status 'pending', due now (same transaction)
    sender task ──► a due pending film, row locked (SKIP LOCKED: replicas share the work)
                ──► film.dcm from the store ──► C-STORE in a thread ──► 'sent' | due again later | 'failed'

The film's row stays locked while it is sent, so a queue_film or cancel_film arriving meanwhile
waits for that send's outcome, then applies on top of it (a film queued again is sent again).
The archive is on in a process while its sender runs (IMAGING_PRINT_ARCHIVE_AE_TITLE set):
queue_film has only the caller's connection, so it asks the running senders.
"""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import dataclass
from typing import Literal

import asyncpg
from imaging_common.waiting import woken
from pydicom import dcmread
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.status import STATUS_SUCCESS, STATUS_WARNING, code_to_category

from print_scp.domain import films_store
from print_scp.domain.storage import FilmStore, ObjectNotFound
from print_scp.settings import Settings

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0  # queue_film cannot wake a sender after its caller commits: senders poll
_running: list[ArchiveSender] = []


def configured(settings: Settings) -> bool:
    return bool(settings.print_archive_ae_title)


async def queue_film(conn: asyncpg.Connection, film_id: str) -> bool:
    """Send the film's current film.dcm to the archive, now and anew (call once its match is recorded).

    Nothing happens when no archive is configured, or when the film is not matched and stored, or
    its film.dcm still awaits the identity of a new decision (dicom_stale): a PACS must never receive
    a film without its patient, or with another's. True when queued.
    """
    if not _running:
        return False
    queued = await films_store.queue_for_archive(conn, film_id)
    if not queued:
        log.warning("film %s not queued for the archive: not matched, or its film.dcm not stored", film_id)
    return queued


async def cancel_film(conn: asyncpg.Connection, film_id: str) -> None:
    """The film is no longer matched: do not send it (a copy already sent stays in the PACS)."""
    if await films_store.cancel_archive(conn, film_id) == "sent":
        log.warning("film %s unmatched after it was sent to the archive: the PACS keeps that copy", film_id)


def wake() -> None:
    """Look for due films now (after a commit that queued one)."""
    for sender in _running:
        sender.wake.set()


@dataclass(frozen=True)
class Outcome:
    """What one send came to: sent, due again later (retry), or refused by the PACS for good."""

    kind: Literal["sent", "retry", "refused"]
    status: int | None = None  # the PACS's DIMSE status, when it answered
    error: str | None = None


def classify(status: int) -> Outcome:
    """A C-STORE response status: success and warnings (PS3.4 B.2.3) count as sent; out of
    resources (0xA7xx) may pass, so it is retried; any other failure would only be refused again."""
    if code_to_category(status) in (STATUS_SUCCESS, STATUS_WARNING):
        return Outcome("sent", status)
    if 0xA700 <= status <= 0xA7FF:
        return Outcome("retry", status, f"PACS out of resources (0x{status:04X})")
    return Outcome("refused", status, f"PACS refused the film (0x{status:04X})")


def c_store(data: bytes, settings: Settings) -> Outcome:
    """One association, one C-STORE of film.dcm (blocking: run it in a thread)."""
    ds = dcmread(io.BytesIO(data))
    ae = AE(ae_title=settings.print_archive_calling_ae or settings.print_ae_title)
    t = settings.print_archive_timeout
    ae.connection_timeout = ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = t
    # The file's own transfer syntax, and the default one every SCP accepts (pynetdicom converts).
    ae.add_requested_context(ds.SOPClassUID, list(dict.fromkeys([ds.file_meta.TransferSyntaxUID,
                                                                   ImplicitVRLittleEndian])))
    where = f"{settings.print_archive_ae_title}@{settings.print_archive_host}:{settings.print_archive_port}"
    assoc = ae.associate(settings.print_archive_host, settings.print_archive_port,
                         ae_title=settings.print_archive_ae_title or "")
    if not assoc.is_established:
        if assoc.rejected_contexts and not assoc.accepted_contexts:  # pynetdicom aborted: nothing to send
            return Outcome("refused", None, f"{where} does not accept {ds.SOPClassUID.name}")
        if assoc.is_rejected:
            return Outcome("retry", None, f"{where} rejected the association")
        return Outcome("retry", None, f"no association with {where} (unreachable, or it aborted)")
    try:
        answer = assoc.send_c_store(ds)
    finally:
        assoc.release()
    if "Status" not in answer:
        return Outcome("retry", None, f"no answer to the C-STORE from {where} (timeout or abort)")
    return classify(int(answer.Status))


class ArchiveSender:
    def __init__(self, *, pool: asyncpg.Pool, store: FilmStore, settings: Settings) -> None:
        self.pool, self.store, self.settings = pool, store, settings
        self.wake = asyncio.Event()

    async def run(self) -> None:
        """Sends due films until cancelled; while it runs, queue_film queues."""
        _running.append(self)
        try:
            while True:
                self.wake.clear()  # before draining: a film queued meanwhile sets it again
                try:
                    while await self.send_one():
                        pass
                except asyncio.CancelledError:
                    raise
                except Exception:  # the database briefly gone: the film stays pending, tried again
                    log.exception("film archive sender error")
                await woken(self.wake, POLL_SECONDS)
        finally:
            _running.remove(self)

    async def send_one(self) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await films_store.claim_due_for_archive(conn)
            if row is None:
                return False
            outcome = await self.send(row["dicom_key"])
            await self.record(conn, row["id"], row["archive_attempts"] + 1, outcome)
        return True

    async def send(self, key: str) -> Outcome:
        try:
            data = await self.store.get(key)
        except ObjectNotFound:
            return Outcome("retry", None, "film.dcm is missing from the film store")
        except Exception as exc:  # the store briefly unreachable
            return Outcome("retry", None, f"film store: {type(exc).__name__}: {exc}")
        try:
            return await asyncio.to_thread(c_store, data, self.settings)
        except Exception as exc:  # a film pydicom cannot read, or a pynetdicom error
            log.exception("film archive send failed")
            return Outcome("retry", None, f"{type(exc).__name__}: {exc}")

    async def record(self, conn: asyncpg.Connection, film_id: object, attempts: int, outcome: Outcome) -> None:
        s = self.settings
        if outcome.kind == "sent":
            await films_store.archive_sent(conn, film_id, attempts, outcome.status)
            return
        give_up = outcome.kind == "refused" or attempts >= s.print_archive_max_attempts
        delay = None if give_up else s.print_archive_retry_seconds * 2 ** (attempts - 1)
        log.warning("film %s not archived (attempt %d, %s): %s", film_id, attempts,
                    "gave up" if delay is None else f"again in {delay:.0f} s", outcome.error)
        await films_store.archive_not_sent(conn, film_id, attempts, give_up=give_up, error=outcome.error,
                                           response_status=outcome.status, delay=delay)
