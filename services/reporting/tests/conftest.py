"""Fixtures of the reporting tests: the whole service app (lifespan: migrations, event bus, delivery
worker), an HL7 receiver on MLLP and a FHIR server registered as receivers, tokens per role, and
`world` building exams whose identifiers are unique to the test (the database is shared)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from imaging_common.events.types import ExamCompleted, ExamItem, OrderCreated, PatientRef
from imaging_common.service import ServiceContext
from imaging_testing import asgi_client
from imaging_testing.auth import issue_test_token
from reporting.app import create_app
from reporting.domain import exams
from reporting.settings import Settings

from .peers import FHIRStore, HL7Receiver, fhir_server, hl7_receiver


@dataclass
class Service:
    client: httpx.AsyncClient
    ctx: ServiceContext
    settings: Settings
    hl7: HL7Receiver
    fhir: FHIRStore

    def auth(self, *roles: str, username: str = "user") -> dict[str, str]:
        token = issue_test_token(self.settings, roles=list(roles), username=username, display_name=username)
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
async def service(test_env: dict[str, str]) -> AsyncIterator[Service]:
    settings = Settings(reporting_delivery_poll=0.2, reporting_delivery_retry_base=0.1,
                        reporting_delivery_retry_max=0.5, reporting_delivery_max_attempts=4,
                        reporting_delivery_timeout=3.0)
    async with hl7_receiver() as hl7, fhir_server() as fhir:
        app = create_app(settings)
        async with asgi_client(app) as client:
            svc = Service(client, app.state.ctx, settings, hl7, fhir)
            admin = svc.auth("admin", username="admin")
            r = await client.put("/api/reporting/receivers/test-his", headers=admin, json={
                "kind": "hl7", "name": "Test HIS", "host": "127.0.0.1", "port": hl7.port, "charset": "utf-8"})
            assert r.status_code == 200, r.text
            r = await client.put("/api/reporting/receivers/test-emr", headers=admin, json={
                "kind": "fhir", "name": "Test EMR", "url": fhir.url})
            assert r.status_code == 200, r.text
            yield svc


@dataclass
class World:
    svc: Service
    tag: str

    def acc(self, n: int = 1) -> str:
        return f"RA{self.tag}{n}"

    async def exam(self, n: int = 1, *, sex: str = "M", laterality: str | None = None, modality: str = "CT",
                   body_part: str = "CHEST", name: str = "张三", empi: str | None = None,
                   exam_name: str = "胸部CT平扫") -> str:
        accession = self.acc(n)
        patient = PatientRef(empi_id=empi or f"E{self.tag}", patient_id=f"P{self.tag}", name=name,
                             name_latin="ZHANG^SAN", sex=sex, birth_date=date(1970, 5, 6))  # type: ignore[arg-type]
        order = OrderCreated(
            order_id=f"O{self.tag}{n}", accession_number=accession, requested_procedure_id=f"R{self.tag}{n}",
            study_instance_uid=f"1.2.826.0.1.3680043.8.498.{int(self.tag, 16)}.{n}", patient=patient,
            ordering_doctor="李医生", ordering_doctor_id="D001", ordering_department="呼吸内科",
            clinical_diagnosis="咳嗽", items=[ExamItem(code=f"{modality}-{body_part}", name=exam_name,
                                                     modality=modality, body_part=body_part,
                                                     laterality=laterality)],  # type: ignore[arg-type]
            ordered_at=datetime.now(UTC))
        done = ExamCompleted(accession_number=accession, study_instance_uid=order.study_instance_uid,
                             patient=patient, mpps_uid=f"1.2.3.{n}", station_ae_title="CT1", modality=modality,
                             completed_at=datetime.now(UTC), order_id=order.order_id)
        async with self.svc.ctx.pool.acquire() as conn:
            async with conn.transaction():
                await exams.apply_order_created(conn, order)
                await exams.apply_exam_completed(conn, done)
        return accession

    async def step(self, accession: str, action: str, headers: dict[str, str], *, expect: int = 200,
                   **body: Any) -> dict[str, Any]:
        r = await self.svc.client.post(f"/api/reporting/exams/{accession}/report/{action}", headers=headers,
                                       json=body or None)
        assert r.status_code == expect, r.text
        return r.json()


@pytest.fixture
def world(service: Service) -> World:
    return World(service, uuid.uuid4().hex[:8].upper())


CONTENT = {"findings": "右肺上叶见一结节，大小约12mm，边界清楚。", "impression": "右肺上叶结节，建议随访。",
           "positive": True}
