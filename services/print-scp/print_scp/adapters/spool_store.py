"""The print spool in the film store: a job is written here before the modality is answered.

`put_jobs` makes accepted jobs durable; the renderer reads one back with `fetch` and `decode` and, once its
film is stored and matched, removes it with `remove_job`. What the spool object(s) look like is
this module's and `domain/spool.py`'s business alone.
"""

from __future__ import annotations

import asyncio

from print_scp.domain import spool
from print_scp.domain.print_session import FilmJob
from print_scp.domain.storage import FilmStore, ObjectNotFound


def spool_key(film_id: str) -> str:
    return f"spool/{film_id}.dcm"


async def put_jobs(store: FilmStore, jobs: list[FilmJob]) -> dict[str, str]:
    """Store each job's spool; returns film id -> spool key (what the films row remembers)."""
    keys = {}
    for job in jobs:
        data = await asyncio.to_thread(spool.dump, job)
        keys[job.film_id] = spool_key(job.film_id)
        await store.put(keys[job.film_id], data, "application/dicom")
    return keys


async def fetch(store: FilmStore, key: str) -> bytes | None:
    """The spooled bytes; None when gone for good. A store outage raises (the film stays spooled)."""
    try:
        return await store.get(key)
    except ObjectNotFound:
        return None


def decode(data: bytes) -> FilmJob:
    """The job from what `fetch` returned; raises on a spool that cannot be read (the film fails)."""
    return spool.load(data)


async def remove_job(store: FilmStore, key: str) -> None:
    await store.delete(key)
