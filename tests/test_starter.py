"""Ready on day one (issue 23 item 4): a platform on an empty database, the starter configuration loaded
by an admin through each service's /admin/starter (403 for a clerk), then an exam of the catalogue
booked through scheduling's API and its room found in queue calling with a screen; and
`python -m imaging_common.allinone starter` loading it from the command line, once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
from imaging_common.allinone import build_platform
from imaging_common.config import CommonSettings
from imaging_common.starter import department
from imaging_testing import eventually, free_port, http_server
from imaging_testing.auth import issue_test_token
from imaging_testing.helpers import allinone_process, database_url, environment, until_ready

STARTER_PREFIXES = ["critical-values", "queue", "reporting", "scheduling"]


@contextlib.asynccontextmanager
async def empty_database(test_env: dict[str, str]) -> AsyncIterator[str]:
    """A database of its own, empty (the session's is shared and configured by other tests); dropped after."""
    name = f"imaging_starter_{uuid.uuid4().hex[:8]}"
    server = await asyncpg.connect(database_url(test_env["DATABASE_URL"], "postgres"))
    try:
        await server.execute(f'CREATE DATABASE "{name}"')
        try:
            yield database_url(test_env["DATABASE_URL"], name)
        finally:
            await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await server.close()


def _headers(role: str) -> dict[str, str]:
    token = issue_test_token(CommonSettings(), roles=[role], username=f"starter-{role}", display_name=f"starter-{role}")
    return {"Authorization": f"Bearer {token}"}


async def test_an_admin_loads_the_starter_and_an_exam_of_the_catalogue_is_booked(test_env: dict[str, str]) -> None:
    namespace = f"{test_env['IMAGING_NAMESPACE']}-starter"
    async with empty_database(test_env) as url:
        env = {"DATABASE_URL": url, "IMAGING_NAMESPACE": namespace, "IMAGING_PRINT_PORT": str(free_port()),
               "IMAGING_WORKLIST_PORT": str(free_port()), "IMAGING_CRITICAL_MLLP_PORT": str(free_port()),
               "IMAGING_MLLP_PORT": "0"}
        try:
            with environment(env):
                async with http_server(build_platform()) as base, httpx.AsyncClient(base_url=base, timeout=30) as api:
                    await _day_one(api, url)
        finally:
            from imaging_common.events.topology import delete_namespace

            with contextlib.suppress(Exception):
                await delete_namespace(test_env["AMQP_URL"], namespace)


async def _day_one(api: httpx.AsyncClient, url: str) -> None:
    admin, clerk = _headers("admin"), _headers("clerk")
    dept = department()

    # Empty: booking has nothing to book in; the preview says what the starter would add, changing nothing.
    assert (await api.get("/api/scheduling/rooms", headers=admin)).json()["count"] == 0
    preview = await api.get("/api/scheduling/admin/starter", headers=admin)
    assert preview.status_code == 200, preview.text
    assert preview.json()["loaded"] is False and preview.json()["department"] == dept.name
    assert preview.json()["parts"]["rooms"]["created"] == len(dept.rooms)
    assert (await api.get("/api/scheduling/rooms", headers=admin)).json()["count"] == 0

    for prefix in STARTER_PREFIXES:
        assert (await api.post(f"/api/{prefix}/admin/starter")).status_code == 401
        assert (await api.post(f"/api/{prefix}/admin/starter", headers=clerk)).status_code == 403, prefix
        assert (await api.get(f"/api/{prefix}/admin/starter", headers=clerk)).status_code == 403, prefix
    assert (await api.get("/api/scheduling/rooms", headers=admin)).json()["count"] == 0  # the clerk loaded nothing

    loaded: dict[str, Any] = {}
    for prefix in STARTER_PREFIXES:
        r = await api.post(f"/api/{prefix}/admin/starter", headers=admin)
        assert r.status_code == 200, r.text
        assert r.json()["loaded"] is True
        loaded[prefix] = r.json()["parts"]
    assert loaded["scheduling"]["rooms"]["created"] == len(dept.rooms)
    assert loaded["scheduling"]["exam_types"]["created"] == len(dept.exam_types)
    assert loaded["queue"]["screens"]["created"] == len(dept.screens)
    assert loaded["reporting"]["templates"]["created"] == len(dept.templates)
    assert loaded["critical-values"]["dictionary_items"]["created"] >= 1  # beyond the migrations' version 1
    # Services without a starter part have no such route.
    assert (await api.get("/api/worklist/admin/starter", headers=admin)).status_code == 404

    again = await api.post("/api/scheduling/admin/starter", headers=admin)
    assert again.status_code == 200
    assert {part: p["created"] for part, p in again.json()["parts"].items()} == {"rooms": 0, "exam_types": 0}

    conn = await asyncpg.connect(url)
    try:
        audited = await conn.fetch("SELECT service, actor, entity_id, detail FROM audit.audit_log "
                                   "WHERE action = 'starter-load' ORDER BY seq")
    finally:
        await conn.close()
    assert [(r["actor"], r["entity_id"]) for r in audited][:4] == [
        ("starter-admin", name) for name in ("critical_values", "queue_calling", "reporting", "scheduling")]

    # The catalogue as scheduling serves it (what the registration page will offer), then an order of it.
    catalogue = {e["code"]: e for e in (await api.get("/api/scheduling/exam-types", headers=clerk)).json()["data"]}
    assert {"CT-CHEST", "CT-HEAD", "MR-KNEE", "DX-CHEST", "US-ABD"} <= set(catalogue)
    knee = catalogue["MR-KNEE"]
    assert knee["name"] == "膝关节MR平扫" and knee["modality"] == "MR" and not knee["auto_created"]
    r = await api.post("/api/registration/patients", headers=clerk, json={
        "name": "测试病人", "phone": "13900000000", "verified": True, "force_new": True,
        "identifiers": [{"type": "resident-id", "value": _resident_id()}]})
    assert r.status_code == 201, r.text
    empi_id = r.json()["patient"]["empi_id"]
    r = await api.post("/api/registration/orders", headers=clerk, json={
        "empi_id": empi_id, "ordering_department": "骨科", "ordering_doctor": "王医生", "clinical_diagnosis": "膝痛",
        "purpose": "排除半月板损伤", "items": [{k: knee[k] for k in ("code", "name", "modality", "body_part")}]})
    assert r.status_code == 201, r.text
    accession = r.json()["accession_number"]
    order_id = (await api.get(f"/api/registration/orders/{accession}", headers=admin)).json()["order_id"]

    async def known() -> Any:
        r = await api.get("/api/scheduling/requests", params={"order_id": order_id}, headers=admin)
        return r.status_code == 200 and r.json()["data"]

    await eventually(known, "scheduling to learn the order from order.created", within=60)
    found = await api.post("/api/scheduling/find", headers=clerk, json={"order_id": order_id, "exam_code": "MR-KNEE"})
    assert found.status_code == 200, found.text
    booked = await api.post("/api/scheduling/appointments", headers=clerk,
                            json={"order_id": order_id, "exam_code": "MR-KNEE"})
    assert booked.status_code == 201, booked.text
    appointment = booked.json()
    assert appointment["status"] == "booked" and appointment["room_id"] in {"MR1", "MR2"}

    # The booked room is a room of queue calling, calling a queue, shown on a door and a hall screen.
    rooms = {r["room_id"]: r for r in (await api.get("/api/queue/rooms", headers=admin)).json()["data"]}
    assert rooms[appointment["room_id"]]["queue_ids"] == ["main-MR"]
    screens = (await api.get("/api/queue/screens", headers=admin)).json()["data"]
    showing = {s["kind"] for s in screens if appointment["room_id"] in s["room_ids"]}
    assert showing == {"door", "hall"}
    templates = (await api.get("/api/reporting/templates", params={"modality": "MR"}, headers=admin)).json()["data"]
    assert any(t["body_part"] == "KNEE" for t in templates)


def _resident_id() -> str:
    from imaging_common.empi.identifiers import resident_check_char

    body = f"11010519{uuid.uuid4().int % 100:02d}0101{uuid.uuid4().int % 1000:03d}"
    return body + resident_check_char(body)


async def test_the_allinone_starter_command_loads_once(test_env: dict[str, str]) -> None:
    async with empty_database(test_env) as url:
        env = {**os.environ, "DATABASE_URL": url}

        def run() -> str:
            done = subprocess.run([sys.executable, "-m", "imaging_common.allinone", "starter"], env=env,
                                  capture_output=True, text=True, timeout=240)
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout

        first = await asyncio.to_thread(run)
        dept = department()
        assert f"starter configuration ({dept.name}):" in first
        assert f"scheduling: rooms {len(dept.rooms)} added, 0 kept, exam_types {len(dept.exam_types)} added" in first
        assert f"screens {len(dept.screens)} added" in first
        second = await asyncio.to_thread(run)
        assert f"scheduling: rooms 0 added, {len(dept.rooms)} kept" in second
        assert " 1 added" not in second and "s 0 added" in second
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM scheduling.room") == len(dept.rooms)
            assert await conn.fetchval("SELECT count(*) FROM queue_calling.screen") == len(dept.screens)
            actors = await conn.fetch("SELECT DISTINCT actor FROM audit.audit_log WHERE action = 'starter-load'")
            assert [r["actor"].endswith("(allinone starter)") for r in actors] == [True]
        finally:
            await conn.close()


async def test_make_run_with_imaging_starter_loads_it_before_serving(test_env: dict[str, str], tmp_path: Any) -> None:
    """`IMAGING_STARTER=1 make run`: the platform process loads the starter, then serves it."""
    async with empty_database(test_env) as url:
        port = free_port()
        env = {**os.environ, "DATABASE_URL": url, "IMAGING_STARTER": "1", "IMAGING_HTTP_PORT": str(port),
               "IMAGING_NAMESPACE": f"{test_env['IMAGING_NAMESPACE']}-starter-run",
               "IMAGING_PRINT_PORT": str(free_port()), "IMAGING_WORKLIST_PORT": str(free_port()),
               "IMAGING_MLLP_PORT": str(free_port()), "IMAGING_CRITICAL_MLLP_PORT": str(free_port())}
        log = tmp_path / "platform.log"
        try:
            with allinone_process(env, log) as proc:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as api:
                    await until_ready(f"http://127.0.0.1:{port}/api/scheduling/readyz", proc, within=120,
                                      output=lambda: log.read_text()[-3000:])
                    assert f"scheduling: rooms {len(department().rooms)} added" in log.read_text()
                    with environment({"IMAGING_NAMESPACE": env["IMAGING_NAMESPACE"]}):  # its sessions live there
                        admin = _headers("admin")
                    rooms = await api.get("/api/scheduling/rooms", headers=admin)
                    assert rooms.status_code == 200, rooms.text
                    assert rooms.json()["count"] == len(department().rooms)
        finally:
            from imaging_common.events.topology import delete_namespace

            with contextlib.suppress(Exception):
                await delete_namespace(test_env["AMQP_URL"], env["IMAGING_NAMESPACE"])
