"""An answered print survives a crash; an unanswered one leaves nothing; text keeps its characters.

The SCP here runs without a renderer, on a database and a film store of its own (the session's
print_app renders every spooled film it finds): what the modality was told is printed must be
rebuilt from the spool alone, by a pipeline that never saw the association.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from imaging_common import db
from imaging_testing import TEST_DATABASE, free_port
from imaging_testing import print_kit as tk
from print_scp.adapters import spool_store
from print_scp.adapters.dicom_scp import PrintScp
from print_scp.adapters.film_pipeline import FilmPipeline
from print_scp.adapters.storage_fs import DirectoryStore
from print_scp.app import SERVICE
from print_scp.settings import Settings
from pydicom.uid import generate_uid

TEXT = "张三 胸部CT"


@dataclass
class Spooler:
    """A print SCP that only spools (no renderer), its database pool and its store's folder."""

    scp: PrintScp
    pool: asyncpg.Pool
    root: Path
    settings: Settings

    def images(self) -> list[Path]:
        folder = self.root / "spool" / "images"
        return [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []

    async def film(self, box_uid: str) -> Any:
        async with self.pool.acquire() as conn:
            return await conn.fetchrow("SELECT * FROM films WHERE film_box_uid = $1", box_uid)


@pytest.fixture
async def spooler(test_env: dict[str, str], tmp_path: Path) -> AsyncIterator[Spooler]:
    url = test_env["DATABASE_URL"].rsplit("/", 1)[0] + f"/{TEST_DATABASE}_spool_{uuid.uuid4().hex[:6]}"
    await db.ensure_database(url)
    await SERVICE.migrate(url)
    pool = await db.create_pool(url, SERVICE.schema)
    settings = Settings(print_port=free_port(), print_host="127.0.0.1", database_url=url, print_preview_max=256,
                        print_render_dpi=50)
    pipeline = FilmPipeline(pool=pool, store=DirectoryStore(tmp_path), settings=settings)
    scp = PrintScp(settings=settings, pipeline=pipeline, loop=asyncio.get_running_loop())
    await asyncio.to_thread(scp.start)
    try:
        yield Spooler(scp, pool, tmp_path, settings)
    finally:
        await asyncio.to_thread(scp.stop)
        await pool.close()
        conn = await asyncpg.connect(test_env["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        finally:
            await conn.close()


async def _eventually(check: Any, what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        await asyncio.sleep(0.02)


async def test_an_answered_print_is_rendered_after_a_crash_from_the_spool_alone(spooler: Spooler) -> None:
    items = [tk.to_item(tk.anatomy(256, 7), bits=12), tk.to_item(tk.anatomy(128, 8), bits=8)]

    def run() -> dict:
        assoc = tk.print_ae().associate("127.0.0.1", spooler.scp.port, ae_title="PRINT_SCP")
        try:
            return tk.print_film(assoc, items, fmt="STANDARD\\2,1", session_attrs={"label": "CRASH"})
        finally:
            assoc.release()

    out = await asyncio.to_thread(run)
    assert out["print"] == 0 and out["image_boxes"] == [0, 0]
    # The crash: the process that answered is gone, with whatever it held in memory.
    await asyncio.to_thread(spooler.scp.stop)
    row = await spooler.film(out["box_uid"])
    assert row is not None and row["status"] == "spooled" and row["spool_key"]
    restarted = FilmPipeline(pool=spooler.pool, store=DirectoryStore(spooler.root), settings=spooler.settings)
    spooled = await spool_store.fetch(restarted.store, row["spool_key"], row["spool_manifest"])
    assert spooled is not None
    job = spool_store.decode(spooled)
    assert [i.item.PixelData for i in job.images] == [i.PixelData for i in items]
    assert (job.film_box_uid, job.session["FilmSessionLabel"]) == (out["box_uid"], "CRASH")
    assert await restarted.process_one()
    row = await spooler.film(out["box_uid"])
    assert row["status"] == "stored" and row["spool_key"] is None and row["image_count"] == 2
    assert (spooler.root / row["png_key"]).is_file() and (spooler.root / row["dicom_key"]).is_file()
    assert not spooler.images() and not list((spooler.root / "spool").glob("*.json"))  # spool cleared


async def test_a_print_never_answered_leaves_no_film_and_no_spool(spooler: Spooler) -> None:
    item = tk.to_item(tk.anatomy(128, 9), bits=12)

    def run() -> str:
        assoc = tk.print_ae().associate("127.0.0.1", spooler.scp.port, ae_title="PRINT_SCP")
        s, box_uid = generate_uid(), generate_uid()
        assoc.send_n_create(tk.session_ds(), tk.FILM_SESSION, s, meta_uid=tk.GRAY_META)
        _, box = assoc.send_n_create(tk.film_box_ds(s, "STANDARD\\1,2"), tk.FILM_BOX, box_uid, meta_uid=tk.GRAY_META)
        refs = [r.ReferencedSOPInstanceUID for r in box.ReferencedImageBoxSequence]
        for uid in (refs[0], refs[1], refs[0]):  # the first box set twice: its first image is replaced
            st, _ = assoc.send_n_set(tk.image_box_ds(refs.index(uid) + 1, item), tk.GRAY_BOX, uid,
                                     meta_uid=tk.GRAY_META)
            assert st.Status == 0
        assoc.abort()  # the modality died before printing
        return box_uid

    box_uid = await asyncio.to_thread(run)
    await _eventually(lambda: not spooler.images(), "image objects of an aborted association deleted")
    assert await spooler.film(box_uid) is None


async def test_deleted_film_box_drops_its_images_and_sweep_removes_what_a_crash_left(spooler: Spooler) -> None:
    item = tk.to_item(tk.anatomy(64, 10), bits=8)

    def run() -> dict:
        assoc = tk.print_ae().associate("127.0.0.1", spooler.scp.port, ae_title="PRINT_SCP")
        try:
            s = generate_uid()
            assoc.send_n_create(tk.session_ds(), tk.FILM_SESSION, s, meta_uid=tk.GRAY_META)
            dropped = generate_uid()
            _, box = assoc.send_n_create(tk.film_box_ds(s), tk.FILM_BOX, dropped, meta_uid=tk.GRAY_META)
            ref = box.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
            assoc.send_n_set(tk.image_box_ds(1, item), tk.GRAY_BOX, ref, meta_uid=tk.GRAY_META)
            deleted = assoc.send_n_delete(tk.FILM_BOX, dropped, meta_uid=tk.GRAY_META).Status
            assoc.send_n_delete(tk.FILM_SESSION, s, meta_uid=tk.GRAY_META)
            out = tk.print_film(assoc, [item], session_attrs={"label": "KEPT"})  # the next session prints
            out["deleted"] = deleted
            return out
        finally:
            assoc.release()

    out = await asyncio.to_thread(run)
    assert out["deleted"] == 0 and out["print"] == 0
    row = await spooler.film(out["box_uid"])
    kept = set(spool_store.spool.manifest_image_keys(row["spool_manifest"]))  # committed with the row
    await _eventually(lambda: {p.relative_to(spooler.root).as_posix() for p in spooler.images()} == kept,
                      "only the printed film's image stays spooled")
    # A crash between an N-SET and its print leaves an image object (and a manifest without a row).
    orphans = [spooler.root / spool_store.image_key(), spooler.root / spool_store.manifest_key(str(uuid.uuid4()))]
    for path in orphans:
        path.write_bytes(b"left by a crash")
    old = time.time() - 2 * spool_store.SWEEP_AGE.total_seconds()
    for path in [*orphans, *spooler.images()]:
        os.utime(path, (old, old))
    assert await spool_store.sweep(DirectoryStore(spooler.root), spooler.pool) == 2
    assert not any(p.exists() for p in orphans)
    assert {p.relative_to(spooler.root).as_posix() for p in spooler.images()} == kept  # still to be rendered


@pytest.mark.parametrize("charset", ["ISO_IR 192", "GB18030"])
async def test_chinese_label_and_annotation_keep_their_characters_in_the_spool(spooler: Spooler,
                                                                               charset: str) -> None:
    item = tk.to_item(tk.anatomy(64, 11), bits=12)

    box_uid = await asyncio.to_thread(tk.print_annotated, spooler.scp.port, item, label=TEXT, text=TEXT,
                                      charset=charset)
    row = await spooler.film(box_uid)
    assert row["session_label"] == TEXT
    spooled = await spool_store.fetch(DirectoryStore(spooler.root), row["spool_key"], row["spool_manifest"])
    assert spooled is not None
    job = spool_store.decode(spooled)
    assert job.session["FilmSessionLabel"] == TEXT
    assert job.annotations[0] == TEXT
