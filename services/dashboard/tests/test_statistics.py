"""The statistics from a replayed event stream equal those computed directly from the fixture's data:
the events every service would publish about a department's exams go through RabbitMQ to the dashboard's
consumer, its read model answers /api/dashboard/stats/<metric>, and each figure is compared with the same
figure computed in Python from the fixture (tests/fixture_data.py). Also: per-subject versions (a stale order
snapshot changes nothing), exports (CSV, XLSX read back with openpyxl), roles, drill-down audited."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest
from imaging_common.events.types import ExamItem, OrderChanged, PatientRef
from imaging_testing import eventually
from openpyxl import load_workbook

from . import fixture_data as fx
from .conftest import Service

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
async def replayed(service: Service, emit: Any) -> fx.Department:
    """The fixture's department, replayed onto the bus, its devices registered; delivered times noted as
    their events were published."""
    dept = fx.department()
    async with httpx.AsyncClient(base_url=service.url + "/api/dashboard", timeout=30) as api:
        for ae, modality in dept.devices.items():
            r = await api.put(f"/devices/{ae}", headers=service.headers("it-ops"), json={
                "kind": "modality", "name": f"{modality} {ae}", "ae_title": ae, "host": "127.0.0.1", "port": 9,
                "modality": modality, "campus": dept.campus, "opens": fx.OPENS.isoformat(),
                "closes": fx.CLOSES.isoformat(), "active": False})  # not polled: only its hours count here
            assert r.status_code == 200, r.text
    for exam in dept.exams:
        for model, subject in fx.events(exam, dept.campus):
            sent = await emit(model, subject)
            if model.type == "film.matched":
                exam.delivered_at = sent.time
    return dept


def _close(got: Any, want: Any, key: str) -> bool:
    if got is None or want is None:
        return got is want
    if isinstance(want, float) or isinstance(got, float):
        return abs(float(got) - float(want)) <= (0.11 if key.endswith("_s") else 1e-4)
    return bool(got == want)


def _differences(rows: list[dict[str, Any]], expected: dict[Any, dict[str, Any]],
                 key: Any = lambda r: (r["period"], r["key"])) -> list[str]:
    got = {key(r): r for r in rows}
    out = [f"groups: got {sorted(got)}, want {sorted(expected)}"] if set(got) != set(expected) else []
    for k, want in expected.items():
        for name, value in want.items():
            if k in got and not _close(got[k].get(name), value, name):
                out.append(f"{k} {name}: got {got[k].get(name)}, want {value}")
    return out


async def _agrees(api: httpx.AsyncClient, service: Service, dept: fx.Department, metric: str,
                  expected: dict[Any, dict[str, Any]], *, period: str = "all", group_by: str = "modality",
                  key: Any = lambda r: (r["period"], r["key"])) -> None:
    params = {"start": dept.start.isoformat(), "end": dept.end.isoformat(), "period": period, "group_by": group_by,
              "campus": dept.campus}
    last: list[str] = []

    async def converged() -> bool:
        nonlocal last
        r = await api.get(f"/stats/{metric}", params=params, headers=service.headers("senior-radiologist"))
        assert r.status_code == 200, r.text
        last = _differences(r.json()["data"], expected, key)
        return not last

    try:
        await eventually(converged, f"{metric} from the events", within=60)
    except AssertionError:
        raise AssertionError(f"{metric} differs from the fixture:\n" + "\n".join(last[:20])) from None


async def test_volumes_by_month_equal_the_fixture(api: httpx.AsyncClient, service: Service,
                                                  replayed: fx.Department) -> None:
    await _agrees(api, service, replayed, "volumes", fx.volumes_by_month(replayed), period="month")


async def test_turnaround_per_step_equals_the_fixture(api: httpx.AsyncClient, service: Service,
                                                      replayed: fx.Department) -> None:
    await _agrees(api, service, replayed, "turnaround", fx.turnaround(replayed))


async def test_no_shows_and_waiting_equal_the_fixture(api: httpx.AsyncClient, service: Service,
                                                      replayed: fx.Department) -> None:
    await _agrees(api, service, replayed, "waiting", fx.waiting(replayed))


async def test_positive_rate_agreement_and_amendments_equal_the_fixture(
        api: httpx.AsyncClient, service: Service, replayed: fx.Department) -> None:
    await _agrees(api, service, replayed, "reports", fx.reports(replayed))


async def test_critical_ten_minute_rate_equals_the_fixture(api: httpx.AsyncClient, service: Service,
                                                           replayed: fx.Department) -> None:
    await _agrees(api, service, replayed, "critical", fx.critical(replayed))


async def test_device_utilisation_equals_the_fixture(api: httpx.AsyncClient, service: Service,
                                                     replayed: fx.Department) -> None:
    await _agrees(api, service, replayed, "utilisation", fx.utilisation(replayed), key=lambda r: r["key"])


async def test_a_stale_order_snapshot_changes_nothing_a_newer_one_does(
        api: httpx.AsyncClient, service: Service, replayed: fx.Department, emit: Any) -> None:
    await test_turnaround_per_step_equals_the_fixture(api, service, replayed)  # the stream is in
    first, second = replayed.exams[0], replayed.exams[1]

    def changed(exam: fx.Exam, version: int, department: str) -> OrderChanged:
        return OrderChanged(
            order_id=f"O{exam.accession}", accession_number=exam.accession, requested_procedure_id="RP",
            study_instance_uid="1.2", patient=PatientRef(empi_id="E", patient_id="P", name=exam.name),
            items=[ExamItem(code="X", name="检查", modality=exam.modality)], ordered_at=exam.ordered_at,
            ordering_department=department, version=version)

    await emit(changed(first, 1, "旧快照科室"), first.accession)  # version 1 was applied: stale
    await emit(changed(second, 2, "新科室"), second.accession)
    headers = service.headers("admin")
    params = {"start": replayed.start.isoformat(), "end": replayed.end.isoformat(), "campus": replayed.campus}

    async def departments() -> dict[str, str] | None:
        r = await api.get("/exams", params=params, headers=headers)
        found = {row["accession_number"]: row["department"] for row in r.json()["data"]}
        return found if found.get(second.accession) == "新科室" else None

    found = await eventually(departments, "the newer order snapshot")
    assert found[first.accession] == first.department


async def test_exports_open_as_spreadsheets(api: httpx.AsyncClient, service: Service,
                                            replayed: fx.Department) -> None:
    await test_volumes_by_month_equal_the_fixture(api, service, replayed)
    params = {"start": replayed.start.isoformat(), "end": replayed.end.isoformat(), "period": "month",
              "group_by": "modality", "campus": replayed.campus}
    headers = service.headers("senior-radiologist")
    rows = (await api.get("/stats/volumes", params=params, headers=headers)).json()["data"]
    assert rows

    xlsx = await api.get("/stats/volumes", params={**params, "format": "xlsx"}, headers=headers)
    assert xlsx.status_code == 200
    assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument.spreadsheetml")
    sheet = load_workbook(io.BytesIO(xlsx.content), read_only=True).active
    table = list(sheet.iter_rows(values_only=True))
    assert list(table[0]) == ["period", "key", "exams"]
    assert [list(r) for r in table[1:]] == [[r["period"], r["key"], r["exams"]] for r in rows]

    text = await api.get("/stats/volumes", params={**params, "format": "csv"}, headers=headers)
    assert text.headers["content-type"].startswith("text/csv")
    read = list(csv.DictReader(io.StringIO(text.content.decode("utf-8-sig"))))
    assert [(r["period"], r["key"], int(r["exams"])) for r in read] == [(r["period"], r["key"], r["exams"])
                                                                         for r in rows]


async def test_least_privilege_and_clear_errors(api: httpx.AsyncClient, service: Service) -> None:
    assert (await api.get("/stats/volumes")).status_code == 401
    for role in ("clerk", "technologist", "radiologist", "clinician", "nurse"):
        assert (await api.get("/stats/volumes", headers=service.headers(role))).status_code == 403, role
    assert (await api.get("/exams", headers=service.headers("it-ops"))).status_code == 403
    backwards = {"start": "2026-02-01T00:00:00+08:00", "end": "2026-01-01T00:00:00+08:00"}
    bad = await api.get("/stats/volumes", params=backwards, headers=service.headers("admin"))
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
    wrong = await api.get("/stats/utilisation", params={"department": "内科"}, headers=service.headers("admin"))
    assert wrong.status_code == 422


async def test_drill_down_is_audited(api: httpx.AsyncClient, service: Service, replayed: fx.Department) -> None:
    params = {"start": replayed.start.isoformat(), "end": replayed.end.isoformat(), "campus": replayed.campus}
    r = await api.get("/exams", params=params, headers=service.headers("admin"))
    assert r.status_code == 200
    audited = await service.pool.fetchval(
        "SELECT count(*) FROM audit.audit_log WHERE entity = 'dashboard_exams' "
        "AND detail -> 'filters' ->> 'campus' = $1",
        replayed.campus)
    assert audited >= 1
