"""Quality-control programmes through the API and the bus: the plan draws exams deterministically as their
events arrive (100 % draws all, 0 % none), first and second readers (never the same person), grades and
scores checked, report QC read by radiologists only, statistics per person and month, everything audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from dashboard.domain import qc
from imaging_common.events.types import ExamCompleted, ExamItem, OrderCreated, PatientRef, ReportSigned
from imaging_testing import eventually

from .conftest import Service


def test_the_draw_is_deterministic_and_follows_the_percentage() -> None:
    accessions = [f"A{i}" for i in range(4000)]
    share = sum(qc.drawn("image", a, 10) for a in accessions) / len(accessions)
    assert 0.08 < share < 0.12
    assert [qc.drawn("image", a, 10) for a in accessions[:50]] == [qc.drawn("image", a, 10) for a in accessions[:50]]
    assert not any(qc.drawn("report", a, 0) for a in accessions) and all(qc.drawn("report", a, 100) for a in accessions)


async def test_plans_draws_readings_and_statistics(api: httpx.AsyncClient, service: Service, emit: Any) -> None:
    uid = uuid.uuid4().hex[:6].upper()
    lead, tech, rad, senior = (service.headers(r) for r in ("senior-radiologist", "technologist", "radiologist",
                                                             "senior-radiologist"))
    modality = "XA"  # angiography: no other test of the session uses it, its plan says 100 %
    assert (await api.put(f"/qc/plans/image/{modality}", headers=tech, json={"percent": 100})).status_code == 403
    for kind in ("image", "report"):
        r = await api.put(f"/qc/plans/{kind}/{modality}", headers=lead, json={"percent": 100})
        assert r.status_code == 200, r.text
    assert (await api.put("/qc/plans/request/XA", headers=lead, json={"percent": 0})).status_code == 200
    assert (await api.put("/qc/plans/image/xa", headers=lead, json={"percent": 5})).status_code == 422

    patient = PatientRef(empi_id=f"E{uid}", patient_id=f"P{uid}", name="张三")
    accessions = [f"QC{uid}{i}" for i in range(3)]
    now = datetime.now(UTC)
    for acc in accessions:
        await emit(OrderCreated(order_id=f"O{acc}", accession_number=acc, requested_procedure_id="RP",
                                study_instance_uid="1.2", patient=patient, ordered_at=now, version=1,
                                ordering_doctor="李医生",
                                items=[ExamItem(code="XA-1", name="造影", modality=modality)]), acc)
        await emit(ExamCompleted(accession_number=acc, study_instance_uid="1.2", patient=patient, mpps_uid=f"1.{acc}",
                                 station_ae_title=f"XA{uid}", modality=modality, completed_at=now), acc)
        await emit(ReportSigned(report_id=f"R{acc}", version=2, accession_number=acc, patient=patient,
                                signed_by="王主任", signed_at=now, content_sha256="0" * 64), acc)

    async def drawn(kind: str) -> list[dict[str, Any]] | None:
        r = await api.get(f"/qc/{kind}/items", headers=rad)
        mine = [i for i in r.json()["data"] if i["accession_number"] in accessions]
        return mine if len(mine) == len(accessions) else None

    images = await eventually(lambda: drawn("image"), "every exam drawn for image QC")
    assert {i["person"] for i in images} == {f"XA{uid}"}
    reports = await eventually(lambda: drawn("report"), "every report drawn for report QC")
    assert {i["person"] for i in reports} == {"王主任"}
    requests = (await api.get("/qc/request/items", headers=rad)).json()["data"]
    assert not [i for i in requests if i["accession_number"] in accessions]  # 0 %: none drawn

    first, second = accessions[0], accessions[1]
    url = f"/qc/image/items/{first}/reviews"
    assert (await api.post(url, headers=tech, json={"grade": "乙", "reasons": ["伪影"]})).status_code == 201
    again = await api.post(url, headers=tech, json={"grade": "甲"})
    assert again.status_code == 409 and "第二评阅人" in again.json()["detail"]
    assert (await api.post(url, headers=rad, json={"grade": "乙"})).json()["reader"] == "second"
    assert (await api.post(url, headers=senior, json={"grade": "甲"})).status_code == 409  # two readers already
    assert (await api.post(f"/qc/image/items/{second}/reviews", headers=rad, json={"grade": "X"})).status_code == 422
    no_grade = await api.post(f"/qc/image/items/{second}/reviews", headers=rad, json={"score": 80})
    assert no_grade.status_code == 422 and no_grade.json()["code"] == "qc-grade-missing"
    assert (await api.post(f"/qc/image/items/{second}/reviews", headers=rad, json={"grade": "甲"})).status_code == 201
    missing = await api.post(f"/qc/image/items/NOPE{uid}/reviews", headers=rad, json={"grade": "甲"})
    assert missing.status_code == 404

    report_url = f"/qc/report/items/{first}/reviews"
    assert (await api.post(report_url, headers=tech, json={"score": 90})).status_code == 403
    assert (await api.post(report_url, headers=rad, json={"grade": "甲"})).status_code == 422
    assert (await api.post(report_url, headers=rad, json={"score": 85, "reasons": ["术语不规范"]})).status_code == 201
    assert (await api.post(report_url, headers=senior, json={"score": 70})).status_code == 201

    month = datetime.now(ZoneInfo(service.settings.dashboard_timezone)).strftime("%Y-%m")
    image_stats = (await api.get("/qc/image/stats", headers=lead)).json()["data"]
    row = next(r for r in image_stats if r["person"] == f"XA{uid}")
    assert (row["reviews"], row["grade_a"], row["grade_b"], row["second_reads"], row["agreed"]) == (2, 1, 1, 1, 1)
    assert row["grade_a_rate"] == 0.5 and row["month"] == month
    report_row = next(r for r in (await api.get("/qc/report/stats", headers=lead)).json()["data"]
                      if r["person"] == "王主任")
    assert report_row["reviews"] >= 1 and report_row["second_reads"] >= 1
    assert (await api.get("/qc/image/stats", headers=tech)).status_code == 403

    audited = await service.pool.fetchval(
        "SELECT count(*) FROM audit.audit_log WHERE entity = 'qc_review' AND detail ->> 'accession_number' = $1", first)
    assert audited == 4
