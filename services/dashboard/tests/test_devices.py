"""Modality status with a real DICOM peer: DCMTK's storescp, started and stopped by the test (it fails, not
skips, when DCMTK is missing). The poller's C-ECHO finds it online, an exam started on it (MPPS, through
RabbitMQ) shows it in exam, stopping storescp makes it unreachable with one device.disconnected alert (it is
within its opening hours), starting it again brings it back with device.reconnected. Maintenance is recorded
per device; roles are least privilege."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from imaging_common.events.types import ExamCompleted, ExamStarted, PatientRef
from imaging_testing import eventually, free_port

from .conftest import Service

STORESCP = "/usr/bin/storescp"  # DCMTK's


@contextlib.contextmanager
def storescp(port: int, ae_title: str, folder: Any) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([STORESCP, "--aetitle", ae_title, "--output-directory", str(folder), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


async def _device(api: httpx.AsyncClient, service: Service, device_id: str) -> dict[str, Any]:
    r = await api.get("/devices", headers=service.headers("technologist"))
    assert r.status_code == 200, r.text
    return next(d for d in r.json()["data"] if d["device_id"] == device_id)


async def _alerts(service: Service, device_id: str, kind: str) -> int:
    return int(await service.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE type = $1 AND envelope -> 'data' ->> 'device_id' = $2", kind, device_id))


async def test_device_follows_a_modality_going_away_and_coming_back(
        api: httpx.AsyncClient, service: Service, emit: Any, tmp_path: Any) -> None:
    uid = uuid.uuid4().hex[:6].upper()
    device_id, ae, port = f"ct-{uid.lower()}", f"CT{uid}", free_port()
    with storescp(port, ae, tmp_path):
        r = await api.put(f"/devices/{device_id}", headers=service.headers("it-ops"), json={
            "kind": "modality", "name": "CT 1", "ae_title": ae, "host": "127.0.0.1", "port": port, "modality": "CT",
            "opens": "00:00", "closes": "23:59:59.999999"})
        assert r.status_code == 200, r.text

        async def state(*wanted: str) -> dict[str, Any] | None:
            d = await _device(api, service, device_id)
            return d if d["state"] in wanted else None

        seen = await eventually(lambda: state("idle", "online"), "the first C-ECHO answered")
        assert seen["last_seen_at"] is not None and seen["today_exams"] == 0

        # An exam on it (MPPS through the worklist's events): in exam, then online (recent activity).
        patient = PatientRef(empi_id=f"E{uid}", patient_id=f"P{uid}", name="张三丰")
        mpps = dict(accession_number=f"DEV{uid}", study_instance_uid="1.2.3", patient=patient,
                    mpps_uid=f"1.2.3.{uid}", station_ae_title=ae, modality="CT")
        now = datetime.now(UTC)
        await emit(ExamStarted(**mpps, started_at=now), f"DEV{uid}")
        busy = await eventually(lambda: state("in_exam"), "in exam after exam.started")
        assert busy["today_exams"] == 1
        await emit(ExamCompleted(**mpps, started_at=now, completed_at=now + timedelta(minutes=5)), f"DEV{uid}")
        await eventually(lambda: state("online"), "online after exam.completed")

    # storescp stopped: unreachable, one alert however many polls fail.
    gone = await eventually(lambda: state("unreachable"), "unreachable once storescp stopped")
    assert gone["last_seen_at"] is not None
    await eventually(lambda: _alerts(service, device_id, "device.disconnected"), "device.disconnected")
    polled = (await _device(api, service, device_id))["last_echo_at"]
    await eventually(lambda: _later_poll(api, service, device_id, polled), "a later poll")
    assert await _alerts(service, device_id, "device.disconnected") == 1

    with storescp(port, ae, tmp_path):
        await eventually(lambda: state("online", "idle"), "back once storescp runs again")
        await eventually(lambda: _alerts(service, device_id, "device.reconnected"), "device.reconnected")


async def _later_poll(api: httpx.AsyncClient, service: Service, device_id: str, after: str) -> bool:
    return bool((await _device(api, service, device_id))["last_echo_at"] > after)


async def test_a_device_down_outside_its_opening_hours_raises_no_alert(api: httpx.AsyncClient,
                                                                       service: Service) -> None:
    uid = uuid.uuid4().hex[:6].upper()
    device_id = f"dr-{uid.lower()}"
    # Opening hours that exclude now (the center's time zone).
    hour = datetime.now(ZoneInfo(service.settings.dashboard_timezone)).hour
    opens, closes = ("13:00", "14:00") if hour < 12 else ("01:00", "02:00")
    r = await api.put(f"/devices/{device_id}", headers=service.headers("admin"), json={
        "kind": "printer", "name": "干式打印机", "ae_title": f"DR{uid}", "host": "127.0.0.1", "port": free_port(),
        "opens": opens, "closes": closes})
    assert r.status_code == 200, r.text
    await eventually(lambda: _state_is(api, service, device_id, "unreachable"), "unreachable")
    assert await _alerts(service, device_id, "device.disconnected") == 0


async def _state_is(api: httpx.AsyncClient, service: Service, device_id: str, wanted: str) -> bool:
    return (await _device(api, service, device_id))["state"] == wanted


async def test_maintenance_records_and_roles(api: httpx.AsyncClient, service: Service) -> None:
    uid = uuid.uuid4().hex[:6].upper()
    device_id = f"mr-{uid.lower()}"
    body = {"kind": "modality", "name": "MR 1", "ae_title": f"MR{uid}", "host": "127.0.0.1", "port": 104,
            "active": False}
    put = f"/devices/{device_id}"
    assert (await api.put(put, headers=service.headers("technologist"), json=body)).status_code == 403
    assert (await api.put(put, headers=service.headers("it-ops"), json=body)).status_code == 200
    assert (await api.get("/devices", headers=service.headers("clerk"))).status_code == 403
    bad = await api.put(f"/devices/{device_id}", headers=service.headers("it-ops"), json={**body, "port": 0})
    assert bad.status_code == 422

    record = {"kind": "repair", "started_at": "2026-12-01T09:00:00+08:00", "ended_at": "2026-12-01T11:30:00+08:00",
              "note": "更换梯度线圈"}
    assert (await api.post(f"/devices/{device_id}/maintenance", headers=service.headers("technologist"),
                           json=record)).status_code == 403
    r = await api.post(f"/devices/{device_id}/maintenance", headers=service.headers("it-ops"), json=record)
    assert r.status_code == 201, r.text
    listed = (await api.get(f"/devices/{device_id}/maintenance", headers=service.headers("technologist"))).json()
    assert [m["note"] for m in listed["data"]] == ["更换梯度线圈"]
    missing = await api.post("/devices/nope/maintenance", headers=service.headers("it-ops"), json=record)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    audited = await service.pool.fetchval(
        "SELECT count(*) FROM audit.audit_log WHERE entity = 'maintenance' AND detail ->> 'device_id' = $1", device_id)
    assert audited == 1
