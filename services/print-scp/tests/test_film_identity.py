"""Films never reach the wrong patient (over real DICOM, with OCR): near misses, mixed films and UID
conflicts go to review with their evidence; a matched film's DICOM names its patient and study; a
later event that contradicts a match takes the film back."""

from __future__ import annotations

import asyncio
import io
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from imaging_common.events import CloudEvent, dispatch
from imaging_common.events.types import OrderCancelled, PatientMerged, PatientRef, PatientUpdated
from imaging_testing import print_kit as tk
from print_scp.adapters.events import HANDLERS
from print_scp.domain import films_store
from pydicom import dcmread

from .conftest import OCR_SAFE as SAFE
from .conftest import ocr_safe_digits as _digits
from .conftest import print_once

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


async def _study(app: Any, *, when: datetime | None = None, **patient: Any) -> dict[str, Any]:
    """A study of a fresh patient with full demographics, as order.created would have made it."""
    n = uuid.uuid4().int
    p = {"empi_id": f"E{n % 10**9}", "patient_id": f"P{_digits(n, 8)}", "name": "张三", "name_latin": "ZHANG^SAN",
         "birth_date": "1980-02-03", "sex": "M", "phone": "13800001234"} | patient
    s = {"study_uid": f"1.2.826.0.1.3680043.2.461.{(n >> 8) % 10**12 + 10**11}",
         "accession": f"A{_digits(n >> 40, 10)}", "patient": p}
    when = when or datetime.now(UTC) - timedelta(minutes=30)
    async with app.ctx.pool.acquire() as conn:
        await films_store.upsert_study(conn, study_uid=s["study_uid"], accession=s["accession"], patient=p,
                                    order_id=f"O{n % 10**6}", modality="CT", exam_name="胸部CT平扫",
                                    status="started", ordered_at=when, started_at=when)
    return s


def _burned(patient_id: str, accession: str, seed: int) -> Any:
    img = tk.burn_text(tk.anatomy(512, seed), [f"PID: {patient_id}", f"ACC: {accession}"], font_path=FONT,
                       font_px=30, corner="tl")
    return tk.to_item(img, bits=12)


def _off_by_one(value: str) -> str:
    return value[:-1] + SAFE[(SAFE.index(value[-1]) + 1) % len(SAFE)]


async def _print(app: Any, items: list, **kwargs: Any) -> Any:
    out = await asyncio.to_thread(print_once, app, items, **kwargs)
    assert out["print"] == 0, out
    [film] = await app.wait_films("film_box_uid = $1", out["box_uid"], timeout=60)
    return film


async def _dicom(app: Any, film: Any) -> Any:
    async with app.ctx.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT dicom_key FROM films WHERE id = $1", film["id"])
    return dcmread(io.BytesIO(await app.runtime.store.get(row["dicom_key"])))


def _detail(film: Any) -> dict[str, Any]:
    import json

    d = film["match_detail"]
    return json.loads(d) if isinstance(d, str) else dict(d)


async def test_near_miss_ids_go_to_review_with_the_real_patient_only_suggested(print_app) -> None:
    a = await _study(print_app)
    film = await _print(print_app, [_burned(_off_by_one(a["patient"]["patient_id"]), _off_by_one(a["accession"]), 1)])
    d = _detail(film)
    assert film["match_status"] == "review" and film["accession_number"] is None, d
    assert d["reason"] == "identifier-not-known" and a["accession"] in d["suggestions"], d
    assert _off_by_one(a["patient"]["patient_id"]) in d["read_patient_ids"]
    ds = await _dicom(print_app, film)  # an unmatched film carries no one's identity
    assert ds.PatientID == "" and ds.PatientName == "" and ds.AccessionNumber == ""
    assert ds.StudyInstanceUID != a["study_uid"]
    # ... and is on nobody's kiosk or cloud film: the study has no film to share.
    r = await print_app.client.post("/api/print/shares", json={"accession_number": a["accession"]},
                                    headers=print_app.token("clerk"))
    assert r.status_code == 409


async def test_a_film_of_two_patients_goes_to_review_as_a_conflict(print_app) -> None:
    a, b = await _study(print_app), await _study(print_app, name="李四", name_latin=None)
    film = await _print(print_app, [_burned(b["patient"]["patient_id"], b["accession"], 2),
                                    _burned(a["patient"]["patient_id"], a["accession"], 3)], fmt="STANDARD\\2,1")
    d = _detail(film)
    assert film["match_status"] == "review" and d["reason"] == "conflict", d
    assert {c["accession_number"] for c in d["candidates"]} == {a["accession"], b["accession"]}
    assert [r["source"] for r in d["readings"]] == ["box 1", "box 2"]


async def test_study_uid_of_one_patient_with_another_burned_in_is_a_conflict(print_app) -> None:
    a, b = await _study(print_app), await _study(print_app, name="王五")
    film = await _print(print_app, [_burned(b["patient"]["patient_id"], b["accession"], 4)], study_uid=a["study_uid"])
    d = _detail(film)
    assert film["match_status"] == "review" and d["reason"] == "conflict", d
    assert d["conflict"] == "study-uid-vs-burned-in"
    assert [c["accession_number"] for c in d["candidates"]] == [a["accession"], b["accession"]]
    assert film["patient_id"] is None


async def test_matched_film_carries_its_patient_and_study_and_follows_later_events(print_app) -> None:
    a = await _study(print_app)
    before = datetime.now(UTC)
    film = await _print(print_app, [_burned(a["patient"]["patient_id"], a["accession"], 5)], study_uid=a["study_uid"])
    d = _detail(film)
    assert film["match_status"] == "matched" and d["rule"] == "study-uid" and d["confirmed_by_text"], d
    assert film["matched_at"] > film["printed_at"] >= before - timedelta(seconds=1)
    ds = await _dicom(print_app, film)
    assert ds.SpecificCharacterSet == "ISO_IR 192" and str(ds.PatientName) == "ZHANG^SAN=张三"
    assert (ds.PatientID, ds.PatientBirthDate, ds.PatientSex) == (a["patient"]["patient_id"], "19800203", "M")
    assert ds.AccessionNumber == a["accession"] and ds.StudyInstanceUID == a["study_uid"]
    assert ds.StudyDate and ds.StudyTime and ds.StudyDescription == "胸部CT平扫"
    assert ds.SOPInstanceUID == film["sop_instance_uid"]

    # A new phone number is no change of the film's identity: its DICOM is left as it is.
    phone_only = PatientUpdated(patient=PatientRef.model_validate(a["patient"] | {"phone": "13999990000"}),
                                changed=["phone"])
    async with print_app.ctx.pool.acquire() as conn, conn.transaction():
        await dispatch(HANDLERS, conn, CloudEvent.from_data(phone_only, source="/imaging/registration"))
        same = await conn.fetchrow("SELECT sop_instance_uid, dicom_stale FROM films WHERE id = $1", film["id"])
    assert same["sop_instance_uid"] == ds.SOPInstanceUID and not same["dicom_stale"]

    # Patients merged: the film's DICOM now names the survivor (new series and instance UIDs).
    survivor = PatientRef(empi_id=f"E-surv-{uuid.uuid4().hex[:6]}", patient_id=f"PS{uuid.uuid4().int % 10**8:08d}",
                          name="张三丰", sex="M")
    merged = PatientMerged(surviving=survivor, merged_empi_ids=[a["patient"]["empi_id"]])
    async with print_app.ctx.pool.acquire() as conn, conn.transaction():
        await dispatch(HANDLERS, conn, CloudEvent.from_data(merged, source="/imaging/registration"))
    print_app.runtime.pipeline.wake()
    [after] = await print_app.wait_films("id = $1 AND NOT dicom_stale", film["id"])
    ds2 = await _dicom(print_app, after)
    assert ds2.PatientID == survivor.patient_id and str(ds2.PatientName) == "张三丰"
    assert ds2.PatientBirthDate == "19800203"  # a merge payload without it blanks nothing
    assert ds2.StudyInstanceUID == a["study_uid"] and ds2.SOPInstanceUID != ds.SOPInstanceUID
    assert ds2.SeriesInstanceUID != ds.SeriesInstanceUID

    # The order cancelled: the film goes back to review, its DICOM names no one, film.unmatched is told.
    cancel = OrderCancelled(order_id="O", accession_number=a["accession"], reason="重复开单")
    async with print_app.ctx.pool.acquire() as conn, conn.transaction():
        await dispatch(HANDLERS, conn, CloudEvent.from_data(cancel, source="/imaging/registration"))
    print_app.runtime.pipeline.wake()
    [gone] = await print_app.wait_films("id = $1 AND NOT dicom_stale", film["id"])
    assert gone["match_status"] == "review" and _detail(gone)["reason"] == "order-cancelled"
    ds3 = await _dicom(print_app, gone)
    assert ds3.PatientID == "" and ds3.AccessionNumber == "" and ds3.StudyInstanceUID != a["study_uid"]
    async with print_app.ctx.pool.acquire() as conn:
        types = [r["type"] for r in await conn.fetch(
            "SELECT type FROM outbox WHERE envelope->>'subject' = $1 ORDER BY seq", str(film["id"]))]
    assert types.count("film.matched") == 1 and types.count("film.unmatched") == 1
    # A person cannot attach a film to the cancelled order either.
    r = await print_app.client.post(f"/api/print/films/{film['id']}/match", json={"accession_number": a["accession"]},
                                    headers=print_app.token("technologist"))
    assert r.status_code == 422


async def test_ocr_matched_film_is_filed_under_its_order_and_manual_match_rewrites_it(print_app) -> None:
    a, b = await _study(print_app), await _study(print_app)
    film = await _print(print_app, [_burned(a["patient"]["patient_id"], a["accession"], 6)])
    assert film["match_status"] == "matched" and _detail(film)["rule"] == "ocr-exact", _detail(film)
    ds = await _dicom(print_app, film)
    assert ds.StudyInstanceUID == a["study_uid"] and ds.AccessionNumber == a["accession"]
    # A technologist moves it to B by hand: its DICOM follows once rewritten; until then it is not served.
    r = await print_app.client.post(f"/api/print/films/{film['id']}/match", json={"accession_number": b["accession"]},
                                    headers=print_app.token("technologist", username="tech-li"))
    assert r.status_code == 200 and r.json()["accession_number"] == b["accession"]
    [moved] = await print_app.wait_films("id = $1 AND NOT dicom_stale", film["id"])
    ds2 = await _dicom(print_app, moved)
    assert ds2.StudyInstanceUID == b["study_uid"] and ds2.PatientID == b["patient"]["patient_id"]
    r = await print_app.client.get(f"/api/print/films/{film['id']}/film.dcm", headers=print_app.token("radiologist"))
    assert r.status_code == 200 and dcmread(io.BytesIO(r.content)).AccessionNumber == b["accession"]


async def test_random_films_are_never_attached_to_anyone_their_evidence_does_not_name(print_app) -> None:
    """Property over the wire: films of random mixes of known, unknown, near-miss and conflicting
    identifiers (burned in and read by OCR, with or without a Study UID)."""
    rng = random.Random(16)
    people = [await _study(print_app) for _ in range(3)]
    for n in range(8):
        boxes, named = [], set()
        for _ in range(rng.choice([1, 1, 2])):
            who = rng.choice(people)
            kind = rng.choice(["exact", "exact", "near", "other"])
            pid, acc = who["patient"]["patient_id"], who["accession"]
            if kind == "near":
                pid, acc = _off_by_one(pid), acc
                named.add("unknown")
            elif kind == "other":
                pid = rng.choice(people)["patient"]["patient_id"]
            named |= {p["patient"]["empi_id"] for p in people if pid == p["patient"]["patient_id"]}
            named |= {p["patient"]["empi_id"] for p in people if acc == p["accession"]}
            boxes.append(_burned(pid, acc, 100 + n))
        uid_of = rng.choice([None, *people])
        if uid_of is not None:
            named.add(uid_of["patient"]["empi_id"])
        film = await _print(print_app, boxes, fmt="STANDARD\\1,1" if len(boxes) == 1 else "STANDARD\\2,1",
                            study_uid=uid_of and uid_of["study_uid"])
        if film["match_status"] == "matched":
            assert named == {film["empi_id"]}, (named, _detail(film))
