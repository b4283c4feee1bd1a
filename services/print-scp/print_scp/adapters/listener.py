"""The print SCP as a ServiceSpec listener: the DICOM server, the film renderer, the film store."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from imaging_common.dicom.observe import DimseObserver
from imaging_common.service import ServiceContext

from print_scp.adapters.archive import ArchiveSender, configured
from print_scp.adapters.dicom_scp import PrintScp
from print_scp.adapters.film_pipeline import FilmPipeline
from print_scp.adapters.s3_store import S3Store
from print_scp.adapters.storage_fs import DirectoryStore
from print_scp.domain.storage import FilmStore
from print_scp.settings import Settings


@dataclass
class PrintRuntime:
    """What routes and tests reach through `ctx.extras["print"]`."""

    settings: Settings
    store: FilmStore
    pipeline: FilmPipeline
    scp: PrintScp
    archive: ArchiveSender | None = None  # None: no archive configured


async def open_store(settings: Settings) -> FilmStore:
    """The configured film store, usable: an S3 bucket is checked first (StoreMisconfigured names the setting)."""
    if settings.print_store == "s3":
        return await S3Store.open(settings)
    return DirectoryStore(Path(settings.print_store_dir or settings.data_dir / "print"))


def keep_large_buffers() -> None:
    """Let glibc keep freed image-sized buffers for reuse instead of returning them to the kernel.

    Every image box passes through several 8-200 MB buffers (PDUs, the DIMSE message, pydicom's
    values); by default each is a fresh mmap whose every page faults on first touch, which made the
    copies, not the work, most of an N-SET (13 ms of 2048² 12-bit; 6.6 ms with this). Costs RSS: up
    to TRIM bytes stay mapped after a large print.
    """
    MMAP_THRESHOLD, TRIM_THRESHOLD = -3, -1  # mallopt parameters (malloc.h)
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    libc.mallopt(MMAP_THRESHOLD, 256 * 1024 * 1024)
    libc.mallopt(TRIM_THRESHOLD, 512 * 1024 * 1024)


@contextlib.asynccontextmanager
async def print_listener(ctx: ServiceContext[Settings]) -> AsyncIterator[PrintRuntime]:
    settings = ctx.settings
    keep_large_buffers()
    store = await open_store(settings)
    pipeline = FilmPipeline(pool=ctx.pool, store=store, settings=settings)
    scp = PrintScp(settings=settings, pipeline=pipeline, loop=asyncio.get_running_loop(),
                   observer=DimseObserver(ctx.spec.name, ctx.registry), peers=ctx.extras.get("peers"))
    await asyncio.to_thread(scp.start)
    # Several renderers: OCR of one film (up to a second) does not hold up the films behind it.
    tasks = [asyncio.create_task(pipeline.run(), name=f"print-film-renderer-{i}")
             for i in range(max(1, settings.print_render_workers))]
    archive = ArchiveSender(pool=ctx.pool, store=store, settings=settings) if configured(settings) else None
    if archive is not None:
        tasks.append(asyncio.create_task(archive.run(), name="print-film-archive"))
    runtime = PrintRuntime(settings, store, pipeline, scp, archive)
    ctx.extras["print"] = runtime
    try:
        yield runtime
    finally:
        await asyncio.to_thread(scp.stop)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if isinstance(store, S3Store):
            store.close()
