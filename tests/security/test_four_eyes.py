"""Four eyes in reporting (issue 18, 7): the final signer is not the preliminary author and an
amendment is decided by someone other than who asked for it; a single-reader site may do both
alone, and the report, the amendment and the audit say it was signed single-reader."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import httpx
from imaging_common.events.types import ExamCompleted, ExamItem, OrderCreated, PatientRef
from imaging_testing import http_server
from imaging_testing.auth import issue_test_token
from reporting.app import create_app
from reporting.domain import exams
from reporting.settings import Settings

from security.conftest import Sandbox
from security.unavailable import Resending

CONTENT = {"findings": "右肺上叶见一结节，大小约12mm，边界清楚。", "impression": "右肺上叶结节，建议随访。",
           "positive": True}
BOTH = ("radiologist", "senior-radiologist")  # one person who may sign either step


async def _exam(box: Sandbox) -> str:
    """An exam ready to report in the sandbox's reporting schema (as order.created + exam.completed leave it)."""
    tag = uuid.uuid4().hex[:8].upper()
    accession = f"FE{tag}"
    patient = PatientRef(empi_id=f"E{tag}", patient_id=f"P{tag}", name="张三", sex="M", birth_date=date(1970, 5, 6))
    order = OrderCreated(
        order_id=f"O{tag}", accession_number=accession, requested_procedure_id=f"R{tag}",
        study_instance_uid=f"1.2.826.0.1.3680043.8.498.{int(tag, 16)}", patient=patient, ordering_doctor="李医生",
        ordering_doctor_id="D001", ordering_department="呼吸内科",
        items=[ExamItem(code="CT-CHEST", name="胸部CT平扫", modality="CT", body_part="CHEST")],
        ordered_at=datetime.now(UTC))
    done = ExamCompleted(accession_number=accession, study_instance_uid=order.study_instance_uid, patient=patient,
                         mpps_uid=f"1.2.3.{int(tag, 16)}", station_ae_title="CT1", modality="CT",
                         completed_at=datetime.now(UTC), order_id=order.order_id)
    # Through the sandbox reporting's own pool: no extra connection to a PostgreSQL shared with other suites.
    async with box.apps["reporting"].state.ctx.pool.acquire() as conn, conn.transaction():
        await exams.apply_order_created(conn, order)
        await exams.apply_exam_completed(conn, done)
    return accession


def _as(box: Sandbox, username: str, *roles: str) -> dict[str, str]:
    token = issue_test_token(box.settings, roles=roles, username=username)
    return {"Authorization": f"Bearer {token}"}


def _refused(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["code"] == "second-reader-required", body


@contextlib.asynccontextmanager
async def _single_reader_site(box: Sandbox) -> AsyncIterator[str]:
    """Reporting of a site that reads alone (IMAGING_REPORTING_SINGLE_READER=true), on the sandbox's data."""
    settings = Settings(database_url=box.database_url, namespace=box.settings.namespace, db_pool_max=2,
                        reporting_single_reader=True, reporting_delivery_enabled=False)
    async with http_server(create_app(settings)) as url:
        yield url


async def _audit_steps(box: Sandbox, report_id: str) -> list[dict[str, str | None]]:
    rows = await box.apps["reporting"].state.ctx.pool.fetch(
        "SELECT actor, detail->>'step' AS step, detail->>'single_reader' AS single FROM audit.audit_log "
        "WHERE entity = 'report' AND entity_id = $1 AND action <> 'read' ORDER BY seq", report_id)
    return [dict(r) for r in rows]


async def test_final_signer_and_amendment_reviewer_are_second_readers(sandbox: Sandbox) -> None:
    box = sandbox
    accession = await _exam(box)
    wang, li = _as(box, "dr.wang", *BOTH), _as(box, "dr.li", *BOTH)
    async with httpx.AsyncClient(base_url=f"{box.url}/api/reporting", timeout=30, transport=Resending()) as api:
        step = f"/exams/{accession}/report"
        r = await api.post(f"{step}/preliminary", headers=wang, json={"content": CONTENT})
        assert r.status_code == 200, r.text
        report_id = r.json()["report_id"]
        # The preliminary author cannot sign the final report: 403, nothing changes.
        _refused(await api.post(f"{step}/final", headers=wang), 403)
        r = await api.get(f"/reports/{report_id}", headers=li)
        assert r.json()["state"] == "preliminary" and r.json()["final_by"] is None
        assert r.json()["single_reader"] is False
        # Not after a consultation either: whoever signs the final must not be the author.
        assert (await api.post(f"{step}/consult", headers=wang)).status_code == 200
        _refused(await api.post(f"{step}/final", headers=wang), 403)
        r = await api.post(f"{step}/final", headers=li)
        assert r.status_code == 200 and r.json()["state"] == "final", r.text

        # Amendment: the requester cannot approve (or reject) their own request.
        r = await api.post(f"/reports/{report_id}/amendments", headers=li,
                           json={"kind": "corrected", "reason": "结节大小应为15mm"})
        assert r.status_code == 200, r.text
        for approve in (True, False):
            _refused(await api.post(f"/reports/{report_id}/amendments/review", headers=li,
                                    json={"approve": approve}), 403)
        r = await api.get(f"/reports/{report_id}/amendments", headers=li)
        [pending] = r.json()["data"]
        assert pending["status"] == "requested" and pending["reviewed_by"] is None
        r = await api.post(f"/reports/{report_id}/amendments/review", headers=wang, json={"approve": True})
        assert r.status_code == 200 and r.json()["state"] == "amending", r.text
        r = await api.get(f"/reports/{report_id}/amendments", headers=li)
        [decided] = r.json()["data"]
        assert decided["reviewed_by"] == "dr.wang" and decided["single_reader"] is False
    assert not any(s["single"] for s in await _audit_steps(box, report_id))


async def test_single_reader_site_records_it(sandbox: Sandbox) -> None:
    box = sandbox
    accession = await _exam(box)
    zhao = _as(box, "dr.zhao", *BOTH)
    async with _single_reader_site(box) as url, httpx.AsyncClient(base_url=f"{url}/api/reporting", timeout=30,
                                                                  transport=Resending()) as api:
        step = f"/exams/{accession}/report"
        r = await api.post(f"{step}/preliminary", headers=zhao, json={"content": CONTENT})
        assert r.status_code == 200, r.text
        report_id = r.json()["report_id"]
        r = await api.post(f"{step}/final", headers=zhao)
        assert r.status_code == 200 and r.json()["state"] == "final", r.text
        report = (await api.get(f"/reports/{report_id}", headers=zhao)).json()
        assert report["single_reader"] is True and report["preliminary_by"] == report["final_by"] == "dr.zhao"
        r = await api.post(f"/reports/{report_id}/amendments", headers=zhao,
                           json={"kind": "amended", "reason": "补充纵隔淋巴结描述"})
        assert r.status_code == 200, r.text
        r = await api.post(f"/reports/{report_id}/amendments/review", headers=zhao, json={"approve": True})
        assert r.status_code == 200, r.text
        [amendment] = (await api.get(f"/reports/{report_id}/amendments", headers=zhao)).json()["data"]
        assert amendment["single_reader"] is True and amendment["reviewed_by"] == "dr.zhao"
    steps = {s["step"]: s["single"] for s in await _audit_steps(box, report_id)}
    assert steps["final"] == "true" and steps["approve-amendment"] == "true"
    assert steps["preliminary"] is None and steps["request-amendment"] is None
    # The signature log says so too, beside the signature it concerns.
    single = await box.apps["reporting"].state.ctx.pool.fetchval(
        "SELECT detail->>'single_reader' FROM reporting.signature_log WHERE report_id = $1 AND action = 'sign' "
        "AND detail->>'kind' = 'final'", report_id)
    assert single == "true"
