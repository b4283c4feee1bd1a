"""Matched films to the PACS: DCMTK's storescp receives them; a PACS down, refusing, or cancelled.

One more app of the service (a replica of conftest's, same database and film store) has the
archive configured, towards one port on which each test runs the PACS it needs, or none.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from imaging_testing import asgi_client, eventually, free_port
from imaging_testing import print_kit as tk
from print_scp.adapters import archive
from print_scp.app import create_app
from print_scp.settings import Settings
from pydicom import dcmread
from pydicom.uid import SecondaryCaptureImageStorage
from pynetdicom import AE, evt

PACS_AE = "ARCHIVE"
BASE_DELAY = 0.5  # IMAGING_PRINT_ARCHIVE_RETRY_SECONDS of the test app
MAX_ATTEMPTS = 3

# A PACS that takes CT only (DCMTK association profile): it turns Secondary Capture away.
CT_ONLY = """[[TransferSyntaxes]]
[Uncompressed]
TransferSyntax1 = LocalEndianExplicit
TransferSyntax2 = LittleEndianImplicit
[[PresentationContexts]]
[CTOnly]
PresentationContext1 = VerificationSOPClass\\Uncompressed
PresentationContext2 = CTImageStorage\\Uncompressed
[[Profiles]]
[CTOnly]
PresentationContexts = CTOnly
"""


@pytest.fixture(scope="module")
def pacs_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
async def archive_app(print_app: Any, settings_for: Any, pacs_port: int) -> AsyncIterator[Any]:
    settings = settings_for(Settings, print_port=free_port(), print_host="127.0.0.1",
                            print_archive_ae_title=PACS_AE, print_archive_host="127.0.0.1",
                            print_archive_port=pacs_port, print_archive_calling_ae="FILMS",
                            print_archive_max_attempts=MAX_ATTEMPTS, print_archive_retry_seconds=BASE_DELAY,
                            print_archive_timeout=10)
    app = create_app(settings)
    async with asgi_client(app) as client:
        ctx = app.state.ctx
        yield type(print_app)(client, ctx.extras["print"], settings, ctx)


class StoreScp:
    """DCMTK's storescp on the PACS port, writing what it receives into a folder."""

    def __init__(self, port: int, folder: Path, *extra: str) -> None:
        self.folder = folder
        folder.mkdir(exist_ok=True)
        self.proc = subprocess.Popen(["storescp", "-aet", PACS_AE, "-dhl", "+uf", "-od", str(folder), *extra,
                                      str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.port = port

    async def ready(self) -> None:
        async def answers() -> bool:
            assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
            echo = await asyncio.create_subprocess_exec("echoscu", "-aec", PACS_AE, "127.0.0.1", str(self.port),
                                                        stdout=asyncio.subprocess.DEVNULL,
                                                        stderr=asyncio.subprocess.DEVNULL)
            return await echo.wait() == 0

        await eventually(answers, "storescp answering C-ECHO")

    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if p.is_file())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
async def storescp(pacs_port: int, tmp_path: Path) -> AsyncIterator[StoreScp]:
    scp = StoreScp(pacs_port, tmp_path / "pacs")
    try:
        await scp.ready()
        yield scp
    finally:
        scp.stop()


class AnsweringPacs:
    """A pynetdicom storage SCP answering each C-STORE with the next of the given statuses."""

    def __init__(self, port: int, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        ae = AE(ae_title=PACS_AE)
        ae.add_supported_context(SecondaryCaptureImageStorage)
        self.server = ae.start_server(("127.0.0.1", port), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self.handle)])

    def handle(self, event: Any) -> int:
        return self.statuses.pop(0) if self.statuses else 0x0000


@pytest.fixture
def answering_pacs(pacs_port: int) -> Iterator[Any]:
    servers: list[AnsweringPacs] = []

    def start(statuses: list[int]) -> AnsweringPacs:
        servers.append(AnsweringPacs(pacs_port, statuses))
        return servers[-1]

    yield start
    for pacs in servers:
        pacs.server.shutdown()


async def matched_film(app: Any, printer: Any, seed: int) -> Any:
    """A film printed with a known study's UID, not (or no longer) on its way to the PACS: the
    pipeline may have queued it; each test queues it itself, from a known start."""
    study = await app.add_study()
    film = await printer([tk.to_item(tk.anatomy(96, seed))], study_uid=study["study_uid"])
    assert film["match_status"] == "matched" and film["dicom_key"]
    async with app.ctx.pool.acquire() as conn, conn.transaction():
        await archive.cancel_film(conn, str(film["id"]))  # waits for a send in flight
    return film


async def queue(app: Any, film_id: Any) -> bool:
    async with app.ctx.pool.acquire() as conn, conn.transaction():
        return await archive.queue_film(conn, str(film_id))


async def archive_row(app: Any, film_id: Any) -> Any:
    async with app.ctx.pool.acquire() as conn:
        return await conn.fetchrow("SELECT *, clock_timestamp() AS db_now FROM films WHERE id = $1", film_id)


async def until_status(app: Any, film_id: Any, status: str) -> Any:
    async def reached() -> Any:
        row = await archive_row(app, film_id)
        return row if row["archive_status"] == status else None

    return await eventually(reached, f"film {film_id} archive status {status}")


async def test_matched_film_reaches_the_pacs_as_stored_and_again_when_queued_again(
        archive_app: Any, printer: Any, storescp: StoreScp) -> None:
    film = await matched_film(archive_app, printer, 21)
    before = len(storescp.files())
    assert await queue(archive_app, film["id"])
    row = await until_status(archive_app, film["id"], "sent")
    assert row["archive_response_status"] == 0 and row["archive_attempts"] == 1 and row["archive_error"] is None
    assert len(storescp.files()) == before + 1
    received = max(storescp.files(), key=lambda p: p.stat().st_mtime_ns)
    stored = dcmread(io.BytesIO(await archive_app.runtime.store.get(film["dicom_key"])))
    sent = dcmread(received)
    assert sent == stored  # every element, pixels included
    assert sent.SOPInstanceUID == film["sop_instance_uid"]
    assert sent.file_meta.SourceApplicationEntityTitle.strip() == "FILMS"

    c = archive_app.client
    url = f"/api/print/films/{film['id']}/archive"
    assert (await c.get(url)).status_code == 401
    r = await c.get(url, headers=archive_app.token("radiologist", username="dr-archive"))
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "sent" and body["attempts"] == 1 and body["sent_at"] and body["last_error"] is None
    async with archive_app.ctx.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM audit.audit_log WHERE actor = 'dr-archive' AND "
                                   "entity = 'film' AND entity_id = $1", str(film["id"])) == 1

    # Queued again (its film.dcm rewritten): sent again.
    assert await queue(archive_app, film["id"])
    again = await until_status(archive_app, film["id"], "sent")
    assert again["archived_at"] > row["archived_at"]
    assert len(storescp.files()) == before + 2


async def test_pacs_down_backs_off_then_fails_and_a_retry_sends_it_once_up(
        archive_app: Any, printer: Any, pacs_port: int, tmp_path: Path) -> None:
    film = await matched_film(archive_app, printer, 22)
    queued_at = (await archive_row(archive_app, film["id"]))["db_now"]
    assert await queue(archive_app, film["id"])

    async def tried() -> Any:
        row = await archive_row(archive_app, film["id"])
        return row if row["archive_attempts"] >= 1 else None

    row = await eventually(tried, "a first attempt")
    if row["archive_status"] == "pending":  # due again after base * (1 + 2 + ...) at least
        waited = BASE_DELAY * (2 ** row["archive_attempts"] - 1)
        assert (row["archive_next_at"] - queued_at).total_seconds() >= waited
    assert "no association" in row["archive_error"] and row["archive_response_status"] is None

    failed = await until_status(archive_app, film["id"], "failed")
    assert failed["archive_attempts"] == MAX_ATTEMPTS and failed["archive_next_at"] is None
    assert "no association" in failed["archive_error"]

    c, url = archive_app.client, f"/api/print/films/{film['id']}/archive"
    assert (await c.post(url, headers=archive_app.token("nurse"))).status_code == 403
    body = (await c.get(url, headers=archive_app.token("it-ops"))).json()
    assert body["status"] == "failed" and body["attempts"] == MAX_ATTEMPTS and "no association" in body["last_error"]

    pacs = StoreScp(pacs_port, tmp_path / "pacs")
    try:
        await pacs.ready()
        r = await c.post(url, headers=archive_app.token("it-ops", username="ops-1"))
        assert r.status_code == 202 and r.json()["status"] in ("pending", "sent")
        sent = await until_status(archive_app, film["id"], "sent")
        assert sent["archive_attempts"] == 1 and sent["archive_error"] is None
        assert [dcmread(p).SOPInstanceUID for p in pacs.files()] == [film["sop_instance_uid"]]
    finally:
        pacs.stop()
    async with archive_app.ctx.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM audit.audit_log WHERE actor = 'ops-1' AND "
                                   "action = 'update' AND entity_id = $1", str(film["id"])) == 1


async def test_pacs_answering_out_of_resources_is_retried_and_a_refusal_is_final(
        archive_app: Any, printer: Any, answering_pacs: Any) -> None:
    film = await matched_film(archive_app, printer, 23)
    pacs = answering_pacs([0xA700, 0xC000])
    assert await queue(archive_app, film["id"])
    row = await until_status(archive_app, film["id"], "failed")
    assert not pacs.statuses  # asked twice: out of resources, then refused
    assert row["archive_attempts"] == 2 < MAX_ATTEMPTS and row["archive_response_status"] == 0xC000
    assert "0xC000" in row["archive_error"] and row["archived_at"] is None
    body = (await archive_app.client.get(f"/api/print/films/{film['id']}/archive",
                                         headers=archive_app.token("clerk"))).json()
    assert body["response_status"] == 0xC000 and body["status"] == "failed"


async def test_pacs_not_taking_secondary_capture_fails_the_film_at_once(
        archive_app: Any, printer: Any, pacs_port: int, tmp_path: Path) -> None:
    cfg = tmp_path / "ct-only.cfg"
    cfg.write_text(CT_ONLY)
    pacs = StoreScp(pacs_port, tmp_path / "pacs", "-xf", str(cfg), "CTOnly")
    try:
        await pacs.ready()
        film = await matched_film(archive_app, printer, 24)
        assert await queue(archive_app, film["id"])
        row = await until_status(archive_app, film["id"], "failed")
    finally:
        pacs.stop()
    assert row["archive_attempts"] == 1 and "does not accept Secondary Capture" in row["archive_error"]
    assert pacs.files() == []


async def test_cancel_stops_a_pending_send(archive_app: Any, printer: Any, pacs_port: int, tmp_path: Path) -> None:
    cancelled = await matched_film(archive_app, printer, 25)
    assert await queue(archive_app, cancelled["id"])  # PACS down: stays pending, retried
    await eventually(lambda: tried_once(archive_app, cancelled["id"]), "a first attempt")
    async with archive_app.ctx.pool.acquire() as conn, conn.transaction():
        await archive.cancel_film(conn, str(cancelled["id"]))
    assert (await archive_row(archive_app, cancelled["id"]))["archive_status"] == "cancelled"

    pacs = StoreScp(pacs_port, tmp_path / "pacs")
    try:
        await pacs.ready()
        later = await matched_film(archive_app, printer, 26)
        assert await queue(archive_app, later["id"])
        await until_status(archive_app, later["id"], "sent")  # the sender has run since the cancel
        assert {dcmread(p).SOPInstanceUID for p in pacs.files()} == {later["sop_instance_uid"]}
    finally:
        pacs.stop()
    assert (await archive_row(archive_app, cancelled["id"]))["archive_status"] == "cancelled"


async def tried_once(app: Any, film_id: Any) -> bool:
    return (await archive_row(app, film_id))["archive_attempts"] >= 1


async def test_only_matched_films_are_queued_and_only_where_an_archive_is_configured(
        archive_app: Any, print_app: Any, printer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    unmatched = await printer([tk.to_item(tk.anatomy(96, 27))])  # nothing to match on: review
    assert unmatched["match_status"] == "review"
    assert not await queue(archive_app, unmatched["id"])
    r = await archive_app.client.post(f"/api/print/films/{unmatched['id']}/archive",
                                      headers=archive_app.token("technologist"))
    assert r.status_code == 409
    assert (await archive_row(archive_app, unmatched["id"]))["archive_status"] is None

    film = await matched_film(archive_app, printer, 28)
    r = await print_app.client.post(f"/api/print/films/{film['id']}/archive", headers=print_app.token("admin"))
    assert r.status_code == 409 and r.json()["code"] == "archive-not-configured", r.text
    before = await archive_row(archive_app, film["id"])
    monkeypatch.setattr(archive, "_running", [])  # as in a process whose sender does not run
    assert not await queue(archive_app, film["id"])
    after = await archive_row(archive_app, film["id"])
    assert after["archive_status"] == before["archive_status"] and after["archive_next_at"] is None
