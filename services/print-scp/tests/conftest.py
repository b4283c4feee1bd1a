"""One running print_scp app (HTTP in process, DICOM on a free port) shared by the tests here."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from imaging_testing import asgi_client, free_port
from imaging_testing.auth import issue_test_token
from print_scp.adapters.listener import PrintRuntime
from print_scp.app import create_app
from print_scp.domain import films_store
from print_scp.settings import Settings

OCR_SAFE = "12345689"  # Tesseract reads a 7 as "/7" now and then: flow tests burn in IDs it reads reliably


def ocr_safe_digits(n: int, count: int) -> str:
    out = ""
    for _ in range(count):
        n, d = divmod(n, len(OCR_SAFE))
        out += OCR_SAFE[d]
    return out


@dataclass
class PrintApp:
    client: httpx.AsyncClient
    runtime: PrintRuntime
    settings: Settings
    ctx: Any

    @property
    def port(self) -> int:
        return self.settings.print_port

    def token(self, *roles: str, username: str = "tester") -> dict[str, str]:
        token = issue_test_token(self.settings, roles=roles or ("admin",), username=username)
        return {"Authorization": f"Bearer {token}"}

    async def add_study(self, *, patient_id: str | None = None, accession: str | None = None,
                        study_uid: str | None = None, name: str = "ZHANG^SAN", phone: str = "13800001234",
                        when: datetime | None = None) -> dict[str, str]:
        """A study as the events would have told us (the handlers' SQL, directly)."""
        n = uuid.uuid4().int
        study = {
            "patient_id": patient_id or f"P{ocr_safe_digits(n, 8)}",
            "accession": accession or f"A{ocr_safe_digits(n >> 40, 10)}",
            # a UID component never starts with 0 (PS3.5 9.1)
            "study_uid": study_uid or f"1.2.826.0.1.3680043.2.461.{n % (9 * 10**11) + 10**11}",
            "empi_id": f"E{n % 10**9}",
        }
        patient = {"empi_id": study["empi_id"], "patient_id": study["patient_id"], "name": name, "phone": phone,
                   "sex": "M", "id_number_masked": "1101**********4321"}
        async with self.ctx.pool.acquire() as conn:
            await films_store.upsert_study(conn, study_uid=study["study_uid"], accession=study["accession"],
                                        patient=patient, order_id=f"O{n % 10**6}", modality="CT",
                                        status="completed", ordered_at=when or datetime.now(UTC),
                                        completed_at=when or datetime.now(UTC))
        return study

    async def wait_films(self, where: str, *args: Any, count: int = 1, timeout: float = 30.0) -> list[Any]:
        """Films rows matching `where` once `count` of them are fully processed (spool gone)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            async with self.ctx.pool.acquire() as conn:
                rows = await conn.fetch(f"SELECT * FROM films WHERE {where} AND spool_key IS NULL "
                                        "ORDER BY printed_at", *args)
            if len(rows) >= count:
                return rows
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{len(rows)} of {count} films for {where} {args}")
            await asyncio.sleep(0.05)


@pytest.fixture(scope="session")
async def print_app(settings_for: Any) -> AsyncIterator[PrintApp]:
    settings = settings_for(Settings, print_port=free_port(), print_host="127.0.0.1")
    app = create_app(settings)
    async with asgi_client(app) as client:
        ctx = app.state.ctx
        yield PrintApp(client, ctx.extras["print"], settings, ctx)


def print_once(app: PrintApp, items: list, **kwargs: Any) -> dict:
    """One Appendix A print over a fresh association (run it in a thread)."""
    from imaging_testing import print_kit as tk

    assoc = tk.print_ae().associate("127.0.0.1", app.port, ae_title="PRINT_SCP")
    assert assoc.is_established
    try:
        return tk.print_film(assoc, items, **kwargs)
    finally:
        assoc.release()


@pytest.fixture
def printer(print_app: PrintApp) -> Any:
    async def run(items: list, **kwargs: Any) -> Any:
        out = await asyncio.to_thread(print_once, print_app, items, **kwargs)
        assert out["print"] == 0, out
        [film] = await print_app.wait_films("film_box_uid = $1", out["box_uid"])
        return film

    return run
