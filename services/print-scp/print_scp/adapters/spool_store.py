"""The print spool in the film store: a job is written here before the modality is answered.

    N-SET image box ──AssociationSpool.put──► spool/images/<uuid>.dcm   (a writer thread; answered at once)
    N-ACTION ──AssociationSpool.ready (those writes done) ──put_jobs──► manifest, committed in the films row
    renderer ──fetch + decode──► FilmJob ... film stored and matched ──remove_job──► manifest and images gone

The bulk of a job (its pixels) is thus made durable while the modality is still sending the next image,
and the print only commits its films row, with the small manifest in it (spool_manifest; films spooled
before that have it in the store at spool/<film id>.json). Image objects that never become part
of a print (a box set again, a film box deleted, an association aborted) are deleted when that is known;
whatever a crash leaves behind is removed by `sweep`. What the objects look like is `domain/spool.py`'s
business.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

from print_scp.domain import films_store, spool
from print_scp.domain.print_session import FilmJob
from print_scp.domain.storage import FilmStore, ObjectNotFound

log = logging.getLogger(__name__)
SPOOL = "spool/"
IMAGES = "spool/images/"
# Spool objects older than this that no spooled film refers to are swept. Far longer than an association
# lives (its peer goes silent for IMAGING_PRINT_NETWORK_TIMEOUT at most), so a print still being sent is
# never swept from under it.
SWEEP_AGE = timedelta(hours=24)


def manifest_key(film_id: str) -> str:
    return f"{SPOOL}{film_id}.json"


def image_key() -> str:
    return f"{IMAGES}{uuid.uuid4()}.dcm"


def put_image(store: FilmStore, key: str, modification_list: bytes | memoryview, *, transfer_syntax: str,
              sop_class: str, image_box_uid: str) -> None:
    """One image box's N-SET as received, made durable under `key` (blocking: a spool writer thread)."""
    parts = spool.image_object_parts(modification_list, transfer_syntax=transfer_syntax, sop_class=sop_class,
                                     image_box_uid=image_box_uid)
    store.put_parts_blocking(key, parts, "application/dicom")


# Threads that write image objects as their N-SETs arrive: straight from the association's thread, with no
# round trip through the event loop. Several, so the images of a 2x2 film are written side by side.
_WRITERS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="print-spool-writer")


async def put_jobs(store: FilmStore, jobs: list[FilmJob]) -> dict[str, tuple[str, bytes]]:
    """Each job's manifest; returns film id -> (spool key, manifest), which the films row keeps (the
    manifest is committed with the row, not written to the store).

    Images already spooled at their N-SET (`JobImage.spool_key`, durable: see `AssociationSpool.ready`) are
    only referred to; any other is written first.
    """

    async def one(job: FilmJob) -> tuple[str, tuple[str, bytes]]:
        keys = []
        for image in job.images:
            key = image.spool_key
            if key is None:
                key = image_key()
                await store.put(key, await asyncio.to_thread(spool.image_object_of, image), "application/dicom")
            keys.append(key)
        return job.film_id, (manifest_key(job.film_id), spool.manifest(job, keys))

    return dict(await asyncio.gather(*(one(job) for job in jobs)))


@dataclass
class Spooled:
    """What `fetch` read: a manifest and its image objects, or (legacy=True) a one-file spool."""

    manifest: bytes
    images: dict[str, bytes] = field(default_factory=dict)
    legacy: bool = False


async def fetch(store: FilmStore, key: str, manifest: bytes | None = None) -> Spooled | None:
    """The spooled job (`manifest`: the films row's, if it has one); None when it (or one of its images) is
    gone for good. A store outage raises (the film stays spooled)."""
    try:
        data = manifest if manifest is not None else await store.get(key)
        if not key.endswith(".json"):
            return Spooled(data, legacy=True)
        try:
            keys = spool.manifest_image_keys(data)
        except (ValueError, KeyError, TypeError):  # unreadable: `decode` says so, and the film fails
            return Spooled(data)
        images = await asyncio.gather(*(store.get(k) for k in keys))
    except ObjectNotFound:
        return None
    return Spooled(data, dict(zip(keys, images, strict=True)))


def decode(spooled: Spooled) -> FilmJob:
    """The job from what `fetch` returned; raises on a spool that cannot be read (the film fails)."""
    if spooled.legacy:
        return spool.load_legacy(spooled.manifest)
    return spool.load(spooled.manifest, spooled.images)


async def _image_keys(store: FilmStore, key: str, manifest: bytes | None) -> list[str]:
    if not key.endswith(".json"):
        return []
    try:
        return spool.manifest_image_keys(manifest if manifest is not None else await store.get(key))
    except (ObjectNotFound, ValueError, KeyError, TypeError):
        return []


async def remove_job(store: FilmStore, key: str, spooled: Spooled) -> None:
    """The spooled job gone once its film is stored: its images (as `fetch` read them), then its manifest
    object (if it has one in the store: films spooled before manifests were kept in their row)."""
    await asyncio.gather(*(store.delete(k) for k in spooled.images))
    await store.delete(key)


# ---- objects of one association ------------------------------------------------------------------


class AssociationSpool:
    """The image objects one association writes as its N-SETs arrive; used from that association's thread.

    An object is *pending* until a print using it is accepted; from then on it belongs to that film (its
    manifest names it and the renderer removes it). A pending object no image box refers to any more
    is deleted once its write is done.
    """

    def __init__(self, store: FilmStore, loop: asyncio.AbstractEventLoop) -> None:
        self.store, self.loop = store, loop
        self.pending: dict[str, concurrent.futures.Future[None]] = {}
        self.owned: set[str] = set()

    def put(self, modification_list: bytes | memoryview, *, transfer_syntax: str, sop_class: str,
            image_box_uid: str) -> str:
        """Start writing an image box's N-SET; returns its key at once (the N-SET is answered meanwhile).
        `modification_list` must stay unchanged until the write is done (`ready`)."""
        key = image_key()
        self.pending[key] = _WRITERS.submit(put_image, self.store, key, modification_list,
                                            transfer_syntax=transfer_syntax, sop_class=sop_class,
                                            image_box_uid=image_box_uid)
        return key

    def ready(self, jobs: list[FilmJob], timeout: float) -> None:
        """Wait until the jobs' image objects are durable. An image whose write failed, or whose object
        already belongs to an earlier print of the same box, is left for `put_jobs` to write (spool_key
        None): a retried print then works once the store is back."""
        for job in jobs:
            for image in job.images:
                future = self.pending.get(image.spool_key) if image.spool_key else None
                if future is None:
                    image.spool_key = None
                    continue
                try:
                    future.result(timeout=timeout)
                except concurrent.futures.TimeoutError:
                    raise TimeoutError(f"spooling image {image.position} took over {timeout:.0f} s") from None
                except Exception:
                    log.warning("image %s not spooled at its N-SET; written with the print", image.position,
                                exc_info=True)
                    image.spool_key = None

    def accepted(self, jobs: list[FilmJob]) -> None:
        for job in jobs:
            for image in job.images:
                if image.spool_key is not None and self.pending.pop(image.spool_key, None) is not None:
                    self.owned.add(image.spool_key)

    def keep_only(self, referenced: set[str]) -> None:
        """Delete the pending objects no image box refers to any more."""
        for key in [k for k in self.pending if k not in referenced]:
            self._discard(key)

    def close(self) -> None:
        """The association ended: what was never printed goes."""
        self.keep_only(set())

    def _discard(self, key: str) -> None:
        future = self.pending.pop(key)

        async def delete() -> None:
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(future)
            try:
                await self.store.delete(key)
            except Exception:  # the sweep gets it later
                log.warning("unprinted spool image %s not deleted", key, exc_info=True)

        with contextlib.suppress(RuntimeError):  # the loop is gone (shutdown): the sweep gets it later
            asyncio.run_coroutine_threadsafe(delete(), self.loop)


# ---- sweeping what a crash left ------------------------------------------------------------------


async def sweep(store: FilmStore, pool: asyncpg.Pool, *, age: timedelta = SWEEP_AGE) -> int:
    """Delete spool objects older than `age` that no spooled film refers to; returns how many.

    They are what a crash between an N-SET and its print (or between a manifest and its films row)
    left behind. Replicas may sweep at the same time: deleting twice is harmless.
    """
    before = datetime.now(UTC) - age
    async with pool.acquire() as conn:
        spooled = await films_store.spooled(conn)
    referenced = set(spooled)
    for key, manifest in spooled.items():
        referenced.update(await _image_keys(store, key, manifest))
    stale = [k for k in await store.keys_older_than(SPOOL, before) if k not in referenced]
    for key in stale:
        await store.delete(key)
    if stale:
        log.info("spool sweep: %d stale object(s) deleted", len(stale))
    return len(stale)
