"""Self-service kiosks (issue 18, 8), over HTTP against a running print service:

- each kiosk device has its own key, registered by IT and revocable (a revoked device is refused at
  once, the others keep working); there is no shared key;
- the patient's slip carries an unguessable token issued at the desk: the accession number (printed on
  every request form, easy to guess) fetches nothing, nor does a withdrawn slip;
- requests are limited per device and per client address (429 + Retry-After), wrong keys included;
- a lookup records no hand-over: only the patient's confirmation at the kiosk does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from imaging_testing import free_port, http_server
from print_scp.app import create_app
from print_scp.domain import films_store
from print_scp.settings import Settings

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
DEVICE_LIMIT, ADDRESS_LIMIT = 4, 7


class Kiosks:
    def __init__(self, url: str, app: Any, settings: Settings) -> None:
        self.url, self.app, self.settings = url, app, settings
        self.ctx = app.state.ctx

    def staff(self, *roles: str) -> dict[str, str]:
        from imaging_testing.auth import issue_test_token

        return {"Authorization": f"Bearer {issue_test_token(self.settings, roles=roles)}"}

    async def study_with_film(self, name: str = "王小明") -> tuple[dict[str, str], str]:
        """A study and one matched, stored film of it (as the print pipeline leaves them)."""
        n = uuid.uuid4().hex
        study = {"accession": f"A{int(n[:8], 16) % 10**10:010d}", "empi": f"E{n[:9]}", "patient_id": f"P{n[9:17]}"}
        film_id, key = str(uuid.uuid4()), f"security/kiosk/{n}.png"
        await self.ctx.extras["print"].store.put(key, PNG, "image/png")
        async with self.ctx.pool.acquire() as conn:
            await films_store.upsert_study(
                conn, study_uid=f"1.2.826.0.1.3680043.2.461.9{int(n[:10], 16)}", accession=study["accession"],
                patient={"empi_id": study["empi"], "patient_id": study["patient_id"], "name": name},
                order_id=f"O{n[:6]}", modality="CT", status="completed", ordered_at=datetime.now(UTC),
                completed_at=datetime.now(UTC))
            await conn.execute(
                """INSERT INTO films (id, film_box_uid, print_job_uid, status, printed_at, calling_ae_title,
                       image_count, png_key, match_status, match_method, accession_number, patient_id, empi_id,
                       patient_name)
                   VALUES ($1, $2, $2, 'stored', now(), 'CT01', 1, $3, 'matched', 'study-uid', $4, $5, $6, $7)""",
                film_id, f"1.2.3.{int(n[:8], 16)}", key, study["accession"], study["patient_id"], study["empi"], name)
        return study, film_id

    async def handed_over(self, film_id: str) -> Any:
        async with self.ctx.pool.acquire() as conn:
            return await conn.fetchrow("SELECT handed_over_at, handed_over_by FROM films WHERE id = $1", film_id)


@pytest.fixture(scope="module")
async def kiosks(test_env: dict[str, str]) -> AsyncIterator[Kiosks]:
    settings = Settings(print_port=free_port(), print_host="127.0.0.1", print_kiosk_device_per_minute=DEVICE_LIMIT,
                        print_kiosk_address_per_minute=ADDRESS_LIMIT, db_pool_max=2)
    app = create_app(settings)
    async with http_server(app) as url:
        yield Kiosks(url, app, settings)


async def _fresh_minute() -> None:
    """Rates count per minute: start a rate check early in a minute, never across its end."""
    left = 60 - time.time() % 60
    if left < 15:
        await asyncio.sleep(left + 0.5)


async def _clear_rates(k: Kiosks) -> None:
    async for key in k.ctx.redis.scan_iter(f"{k.settings.namespace}:print:kiosk-rate:*"):
        await k.ctx.redis.delete(key)


async def _device(api: httpx.AsyncClient, k: Kiosks, name: str = "门诊大厅") -> tuple[str, dict[str, str]]:
    device = f"sec-{uuid.uuid4().hex[:8]}"
    r = await api.post("/api/print/admin/kiosks", json={"id": device, "name": name}, headers=k.staff("it-ops"))
    assert r.status_code == 201, r.text
    return device, {"X-Kiosk-Key": r.json()["key"]}


async def test_kiosk_devices_slips_and_collection(kiosks: Kiosks) -> None:
    k = kiosks
    await _clear_rates(k)
    async with httpx.AsyncClient(base_url=k.url, timeout=30) as api:
        study, film = await k.study_with_film()
        # Only IT registers devices; the key is shown once and never listed.
        assert (await api.post("/api/print/admin/kiosks", json={"id": "x-1", "name": "x"},
                               headers=k.staff("clerk"))).status_code == 403
        first, key1 = await _device(api, k)
        second, key2 = await _device(api, k, "住院部")
        listed = await api.get("/api/print/admin/kiosks", headers=k.staff("admin"))
        assert listed.status_code == 200 and key1["X-Kiosk-Key"] not in listed.text
        assert {first, second} <= {d["id"] for d in listed.json()["data"]}

        # The desk issues the slip; the accession number alone is not one.
        r = await api.post("/api/print/slips", json={"accession_number": study["accession"]},
                           headers=k.staff("clerk"))
        assert r.status_code == 201, r.text
        slip = r.json()
        assert len(slip["token"]) >= 24 and study["accession"] not in slip["token"]
        for guess in (study["accession"], study["accession"].lower(), slip["token"][:-1] + "A", ""):
            r = await api.post("/api/print/kiosk/lookup", json={"slip": guess}, headers=key1)
            assert r.status_code in (404, 422), (guess, r.text)

        await _clear_rates(k)  # (the rate test below is about limits; this one about keys and slips)
        # The lookup lists the films and records nothing as handed over.
        r = await api.post("/api/print/kiosk/lookup", json={"slip": slip["token"]}, headers=key1)
        assert r.status_code == 200, r.text
        assert r.json()["patient_name"] == "王*明" and [f["id"] for f in r.json()["films"]] == [film]
        png = await api.get(f"/api/print/kiosk/films/{film}.png", headers={**key1, "X-Slip": slip["token"]})
        assert png.status_code == 200 and png.content == PNG
        assert (await api.get(f"/api/print/kiosk/films/{film}.png",
                              headers={**key1, "X-Slip": study["accession"]})).status_code == 404
        row = await k.handed_over(film)
        assert row["handed_over_at"] is None and row["handed_over_by"] is None

        await _clear_rates(k)
        # Another patient's film cannot be confirmed with this slip; the patient's own is, by this device.
        _, other = await k.study_with_film("赵六")
        r = await api.post("/api/print/kiosk/collected", json={"slip": slip["token"], "film_ids": [other]},
                           headers=key2)
        assert r.status_code == 404 and (await k.handed_over(other))["handed_over_at"] is None
        r = await api.post("/api/print/kiosk/collected", json={"slip": slip["token"], "film_ids": [film]},
                           headers=key2)
        assert r.status_code == 200, r.text
        assert (await k.handed_over(film))["handed_over_by"] == f"kiosk:{second}"

        await _clear_rates(k)
        # Revoking one device refuses it at once; the other still works. A withdrawn slip fetches nothing.
        assert (await api.delete(f"/api/print/admin/kiosks/{first}", headers=k.staff("it-ops"))).status_code == 204
        assert (await api.post("/api/print/kiosk/lookup", json={"slip": slip["token"]},
                               headers=key1)).status_code == 401
        assert (await api.post("/api/print/kiosk/lookup", json={"slip": slip["token"]},
                               headers=key2)).status_code == 200
        assert (await api.delete(f"/api/print/slips/{slip['id']}", headers=k.staff("clerk"))).status_code == 204
        assert (await api.post("/api/print/kiosk/lookup", json={"slip": slip["token"]},
                               headers=key2)).status_code == 404


async def test_kiosk_requests_are_rate_limited_per_device_and_address(kiosks: Kiosks) -> None:
    k = kiosks
    async with httpx.AsyncClient(base_url=k.url, timeout=30) as api:
        _, key_a = await _device(api, k)
        _, key_b = await _device(api, k)
        await _fresh_minute()
        await _clear_rates(k)

        async def lookup(key: dict[str, str]) -> httpx.Response:
            return await api.post("/api/print/kiosk/lookup", json={"slip": "no-such-slip-token"}, headers=key)

        # One device: DEVICE_LIMIT requests in a minute, then 429 with Retry-After.
        for _ in range(DEVICE_LIMIT):
            assert (await lookup(key_a)).status_code == 404
        r = await lookup(key_a)
        assert r.status_code == 429 and 0 < int(r.headers["Retry-After"]) <= 61, r.text
        # Another device is still served, until the address as a whole reaches its limit; guessing keys
        # from that address counts too.
        assert (await lookup(key_b)).status_code == 404
        assert (await lookup({"X-Kiosk-Key": "guessed"})).status_code == 401
        statuses = [(await lookup(key_b)).status_code for _ in range(ADDRESS_LIMIT)]
        assert statuses[-1] == 429 and 429 in statuses, statuses
        r = await lookup({"X-Kiosk-Key": "guessed"})
        assert r.status_code == 429 and "Retry-After" in r.headers
    await _clear_rates(k)
