"""Films API: roles, audit, images, review and manual match, hand-over, cloud-film links, kiosk."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from imaging_common.events import CloudEvent, dispatch
from imaging_common.events.types import OrderCreated, PatientRef
from imaging_testing import print_kit as tk
from print_scp.adapters.events import HANDLERS


async def _events_for(print_app, film_id: str) -> list[str]:
    async with print_app.ctx.pool.acquire() as conn:
        rows = await conn.fetch("SELECT type FROM outbox WHERE envelope->>'subject' = $1 ORDER BY 1", film_id)
    return [r["type"] for r in rows]


async def test_films_by_accession_roles_images_and_audit(print_app, printer) -> None:
    study = await print_app.add_study()
    film = await printer([tk.to_item(tk.anatomy(128, 8))], study_uid=study["study_uid"])
    c = print_app.client
    assert (await c.get("/api/print/films", params={"accession_number": study["accession"]})).status_code == 401
    r = await c.get("/api/print/films", params={"accession_number": study["accession"]},
                    headers=print_app.token("it-ops"))
    assert r.status_code == 403
    r = await c.get("/api/print/films", params={"accession_number": study["accession"]},
                    headers=print_app.token("clinician", username="dr-li"))
    assert r.status_code == 200
    body = r.json()
    assert body["count"] == 1 and body["data"][0]["id"] == str(film["id"])
    assert body["data"][0]["patient_id"] == study["patient_id"]
    for params in ({"patient_id": study["patient_id"]}, {"study_instance_uid": study["study_uid"]}):
        assert (await c.get("/api/print/films", params=params, headers=print_app.token("nurse"))).json()["count"] == 1
    png = await c.get(f"/api/print/films/{film['id']}/image.png", headers=print_app.token("radiologist"))
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    dcm = await c.get(f"/api/print/films/{film['id']}/film.dcm", headers=print_app.token("radiologist"))
    assert dcm.status_code == 200 and dcm.content[128:132] == b"DICM"
    assert (await c.get("/api/print/films/not-a-uuid", headers=print_app.token())).status_code == 404
    assert await _events_for(print_app, str(film["id"])) == ["film.matched", "film.printed"]
    async with print_app.ctx.pool.acquire() as conn:
        audited = await conn.fetchval(
            "SELECT count(*) FROM audit.audit_log WHERE actor = 'dr-li' AND entity = 'film' AND action = 'read'")
    assert audited >= 1


async def test_review_list_manual_match_and_hand_over(print_app, printer) -> None:
    study = await print_app.add_study()
    film = await printer([tk.to_item(tk.anatomy(96, 9))])  # no UID, no text: nothing to match on
    assert film["match_status"] == "review"
    c = print_app.client
    review = await c.get("/api/print/films", params={"match_status": "review"}, headers=print_app.token("technologist"))
    assert str(film["id"]) in [f["id"] for f in review.json()["data"]]
    early = await c.post(f"/api/print/films/{film['id']}/handover", headers=print_app.token("clerk"))
    assert early.status_code == 409
    r = await c.post(f"/api/print/films/{film['id']}/match", json={"accession_number": study["accession"]},
                     headers=print_app.token("nurse"))
    assert r.status_code == 403
    r = await c.post(f"/api/print/films/{film['id']}/match", json={"accession_number": "NOPE"},
                     headers=print_app.token("technologist"))
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    r = await c.post(f"/api/print/films/{film['id']}/match", json={"accession_number": study["accession"]},
                     headers=print_app.token("technologist", username="tech-wang"))
    assert r.status_code == 200
    assert r.json()["match_status"] == "matched" and r.json()["match_method"] == "manual"
    assert r.json()["matched_by"] == "tech-wang" and r.json()["patient_id"] == study["patient_id"]
    assert "film.matched" in await _events_for(print_app, str(film["id"]))
    r = await c.post(f"/api/print/films/{film['id']}/handover", headers=print_app.token("clerk", username="desk-1"))
    assert r.status_code == 200 and r.json()["handed_over_by"] == "desk-1"


async def test_film_with_unknown_study_uid_waits_then_matches_when_the_order_arrives(print_app, printer) -> None:
    uid = "1.2.826.0.1.3680043.2.461.555." + datetime.now(UTC).strftime("%H%M%S%f")
    film = await printer([tk.to_item(tk.anatomy(96, 10))], study_uid=uid)
    assert film["match_status"] == "review" and film["match_detail"] and "study-uid-unknown" in film["match_detail"]
    order = OrderCreated(
        order_id="O-late", accession_number="A" + uid[-10:], requested_procedure_id="RP1", study_instance_uid=uid,
        patient=PatientRef(empi_id="E-late-" + uid[-6:], patient_id="P" + uid[-8:], name="王五"),
        items=[{"code": "CT-CHEST", "name": "胸部CT平扫", "modality": "CT"}], ordered_at=datetime.now(UTC))
    event = CloudEvent.from_data(order, source="/imaging/registration", subject=order.accession_number)
    async with print_app.ctx.pool.acquire() as conn, conn.transaction():
        await dispatch(HANDLERS, conn, event)
    [after] = await print_app.wait_films("id = $1", film["id"])
    assert after["match_status"] == "matched" and after["match_method"] == "study-uid"
    assert after["patient_name"] == "王五"


async def test_cloud_film_share_link_identity_check_expiry_and_lock(print_app, printer) -> None:
    study = await print_app.add_study(name="张三丰", phone="139-0000-5678")
    film = await printer([tk.to_item(tk.anatomy(96, 11))], study_uid=study["study_uid"])
    c = print_app.client
    r = await c.post("/api/print/shares", json={"accession_number": study["accession"], "valid_days": 400},
                     headers=print_app.token("clinician"))
    assert r.status_code == 422
    r = await c.post("/api/print/shares", json={"accession_number": study["accession"], "valid_days": 3},
                     headers=print_app.token("clinician"))
    assert r.status_code == 201, r.text
    share = r.json()
    assert share["url"].endswith("#" + share["token"])
    assert base64.b64decode(share["qr_png_base64"])[:8] == b"\x89PNG\r\n\x1a\n"
    bad = await c.post("/api/print/cloud-film/verify", json={"token": share["token"], "answer": "0000"})
    assert bad.status_code == 403
    ok = await c.post("/api/print/cloud-film/verify", json={"token": share["token"], "answer": "5678"})
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["patient_name"] == "张*丰" and [f["id"] for f in body["films"]] == [str(film["id"])]
    png = await c.get(body["films"][0]["png"], headers={"X-Share-Grant": body["grant"]})
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    assert (await c.get(body["films"][0]["png"])).status_code == 401
    assert (await c.get(body["films"][0]["png"], headers={"X-Share-Grant": "forged"})).status_code == 401
    # Wrong answers lock the link, even for the right answer afterwards.
    for _ in range(print_app.settings.print_share_max_attempts):
        await c.post("/api/print/cloud-film/verify", json={"token": share["token"], "answer": "1111"})
    locked = await c.post("/api/print/cloud-film/verify", json={"token": share["token"], "answer": "5678"})
    assert locked.status_code == 423
    # An expired link is gone.
    r = await c.post("/api/print/shares", json={"accession_number": study["accession"], "valid_days": 1,
                                                "check": "id-last4"}, headers=print_app.token("clerk"))
    second = r.json()
    async with print_app.ctx.pool.acquire() as conn:
        await conn.execute("UPDATE film_shares SET expires_at = now() - interval '1 second' WHERE id = $1",
                           second["id"])
    expired = await c.post("/api/print/cloud-film/verify", json={"token": second["token"], "answer": "4321"})
    assert expired.status_code == 410
    assert (await c.post("/api/print/cloud-film/verify", json={"token": "x" * 32, "answer": "1"})).status_code == 404


async def test_kiosk_lists_the_slips_films_and_records_collection(print_app, printer) -> None:
    study = await print_app.add_study(name="李四")
    film = await printer([tk.to_item(tk.anatomy(96, 12))], study_uid=study["study_uid"])
    c = print_app.client
    r = await c.post("/api/print/admin/kiosks", json={"id": "hall-1", "name": "门诊大厅 1"},
                     headers=print_app.token("it-ops"))
    assert r.status_code == 201, r.text
    key = {"X-Kiosk-Key": r.json()["key"]}
    r = await c.post("/api/print/slips", json={"accession_number": study["accession"]},
                     headers=print_app.token("clerk"))
    assert r.status_code == 201, r.text
    slip = r.json()["token"]
    assert (await c.post("/api/print/kiosk/lookup", json={"slip": slip})).status_code == 401
    assert (await c.post("/api/print/kiosk/lookup", json={"slip": slip},
                         headers={"X-Kiosk-Key": "wrong"})).status_code == 401
    # The accession number is not a slip.
    assert (await c.post("/api/print/kiosk/lookup", json={"slip": study["accession"]}, headers=key)).status_code == 404
    r = await c.post("/api/print/kiosk/lookup", json={"slip": slip}, headers=key)
    assert r.status_code == 200 and r.json()["patient_name"] == "李*"
    [f] = r.json()["films"]
    assert f["id"] == str(film["id"]) and f["collected"] is False
    png = await c.get(f["png"], headers={**key, "X-Slip": slip})
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    assert (await c.get(f["png"], headers=key)).status_code == 404
    async with print_app.ctx.pool.acquire() as conn:
        assert await conn.fetchval("SELECT handed_over_at FROM films WHERE id = $1", film["id"]) is None
    r = await c.post("/api/print/kiosk/collected", json={"slip": slip, "film_ids": [f["id"]]}, headers=key)
    assert r.status_code == 200 and r.json()["films"][0]["handed_over_by"] == "kiosk:hall-1", r.text


async def test_pages(print_app) -> None:
    for path in ("/ui/print/review", "/ui/print/cloud-film"):
        r = await print_app.client.get(path)
        assert r.status_code == 200 and "<html" in r.text
