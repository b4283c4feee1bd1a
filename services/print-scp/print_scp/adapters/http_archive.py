"""A film's sending to the PACS (/api/print/films/{id}/archive): its status, and a retry by staff.

Reads and retries are audited like every access to a patient's film.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from imaging_common import audit
from imaging_common.auth import Principal, require_roles

from print_scp.adapters import archive, schemas
from print_scp.adapters.deps import request_context
from print_scp.adapters.http_films import client_ip, runtime
from print_scp.domain import films_store

router = APIRouter(tags=["archive"])

# it-ops may retry, so it may also see what failed (no patient identity is in this answer).
Reader = Annotated[Principal, Depends(require_roles("clerk", "technologist", "nurse", "radiologist",
                                                    "senior-radiologist", "clinician", "admin", "it-ops"))]
Retrier = Annotated[Principal, Depends(require_roles("technologist", "clerk", "admin", "it-ops"))]


async def film_row(conn: Any, film_id: str, *, lock: bool = False) -> Any:
    try:
        uuid.UUID(film_id)
    except ValueError:
        raise HTTPException(404, f"no film {film_id}") from None
    # FOR UPDATE waits for a send of this film in flight, so a retry starts from its outcome.
    row = await films_store.film_record(conn, film_id, lock=lock)
    if row is None:
        raise HTTPException(404, f"no film {film_id}")
    return row


def archive_public(row: Any) -> dict[str, Any]:
    return {
        "film_id": str(row["id"]),
        "status": row["archive_status"],  # null: never queued (no archive, or not matched)
        "attempts": row["archive_attempts"],
        "next_attempt_at": row["archive_next_at"],
        "last_error": row["archive_error"],
        "sent_at": row["archived_at"],
        "response_status": row["archive_response_status"],
    }


@router.get("/films/{film_id}/archive", response_model=schemas.ArchiveStatus,
            summary="Whether the film reached the PACS, or why not yet")
async def archive_status(request: Request, film_id: str, user: Reader) -> dict[str, Any]:
    async with request_context(request).pool.acquire() as conn, conn.transaction():
        row = await film_row(conn, film_id)
        await audit.record_read(conn, actor=user.username, entity="film", entity_id=film_id,
                                patient_id=row["patient_id"], source_ip=client_ip(request), detail={"archive": True})
    return archive_public(row)


@router.post("/films/{film_id}/archive", status_code=202, response_model=schemas.ArchiveStatus,
             summary="Send the film to the PACS again, now")
async def archive_retry(request: Request, film_id: str, user: Retrier) -> dict[str, Any]:
    if runtime(request).archive is None:
        raise HTTPException(409, "no archive is configured (IMAGING_PRINT_ARCHIVE_AE_TITLE)")
    async with request_context(request).pool.acquire() as conn, conn.transaction():
        row = await film_row(conn, film_id, lock=True)
        if not await archive.queue_film(conn, film_id):
            raise HTTPException(409, "only a matched, stored film goes to the archive")
        await audit.record(conn, actor=user.username, action="update", entity="film", entity_id=film_id,
                           patient_id=row["patient_id"], source_ip=client_ip(request),
                           detail={"archive": "retry", "previous": row["archive_status"]})
        row = await films_store.film_record(conn, film_id)
    archive.wake()
    return archive_public(row)
