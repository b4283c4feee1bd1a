"""The consistency check (issue 17, item 4) against the platform as seven processes (e2e.cluster).

Patients and orders come in through the real interfaces — the front desk's API and the HIS feed
(HL7 ORM^O01 over MLLP) — are booked, checked in and cancelled (desk and ORC-1 CA); once the events
have travelled, every service's copy agrees with registration: 0 drifts. Then drifts are made on
purpose (a service's copy changed in SQL, registration changed without an event) and the check lists
each with its service, subject, field and both values: through the library, the CLI (exit codes
0/1/2, table and --json) and the admin endpoint (admin only, audited).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from imaging_common import consistency
from imaging_common.hl7 import Message
from imaging_common.hl7.mllp import MLLPClient

from e2e.cluster import Cluster, cluster_site
from e2e.journey import (
    TZ,
    Journey,
    Site,
    clear_of_local_midnight,
    eventually,
    resident_id,
    set_up_department,
    unique_name,
)

# The module's days must not straddle the center's midnight (they book and query "today"): started within
# this margin of it, the platform fixture waits for the new day, which the tests' time limit must allow
# (a margin of 40 minutes once made every test of the module time out at 23:20 Beijing time).
MIDNIGHT_MARGIN_MINUTES = 15
pytestmark = pytest.mark.timeout(MIDNIGHT_MARGIN_MINUTES * 60 + 600)


@pytest.fixture(scope="module")
async def platform(test_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[tuple[Cluster, Site, Path]]:
    await clear_of_local_midnight(margin_minutes=MIDNIGHT_MARGIN_MINUTES)
    work = tmp_path_factory.mktemp("consistency")
    async with cluster_site(test_env, work / "cluster") as (cluster, site):
        yield cluster, site, work


def hl7(kind: str, *segments: str) -> bytes:
    head = f"MSH|^~\\&|HIS|HOSP|RIS|IMG|20240601083000||{kind}|{uuid.uuid4().hex[:12]}|P|2.5||||||UNICODE UTF-8"
    return ("\r".join([head, *segments]) + "\r").encode()


def pid(his_id: str, name: str, idn: str | None = None, dob: str = "19800101", sex: str = "F") -> str:
    ids = f"{his_id}^^^HIS^PI" + (f"~{idn}^^^CHN^NNCHN" if idn else "")
    return f"PID|1||{ids}||{name}||{dob}|{sex}|||解放路1号^^武汉^湖北^430000||13500001111"


async def his_says(cluster: Cluster, message: bytes) -> Message:
    async with MLLPClient("127.0.0.1", cluster.port("IMAGING_MLLP_PORT"), timeout=20) as client:
        ack = Message.parse((await client.send(message)).decode())
    assert ack.field("MSA", 1) == "AA", ack.to_er7()
    return ack


def connect(cluster: Cluster) -> consistency.Connect:
    return consistency.connector(cluster.direct_database_url)


async def drifts_now(cluster: Cluster) -> consistency.Report:
    return await consistency.check_settled(connect(cluster))


async def no_drift(cluster: Cluster, within: float = 90) -> consistency.Report:
    """Wait for the events to travel: the check finds nothing (then a settled look agrees)."""
    last: list[consistency.Report] = []

    async def clean() -> bool:
        last[:] = [await drifts_now(cluster)]
        return last[0].ok

    try:
        await eventually(clean, "every service's copy to agree with registration", within=within)
    except AssertionError:
        raise AssertionError("drifts remain:\n" + last[0].table()) from None
    report = await consistency.check_settled(connect(cluster), settle=2)
    assert report.ok, report.table()
    return report


async def cli(cluster: Cluster, *args: str, database_url: str | None = None) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "imaging_common.consistency", "--database-url",
        database_url or cluster.direct_database_url, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@contextlib.asynccontextmanager
async def database(cluster: Cluster) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(cluster.direct_database_url)
    try:
        yield conn
    finally:
        await conn.close()


STATE: dict[str, Any] = {}  # what the first test made, for the next ones


async def test_orders_from_the_desk_and_the_his_leave_no_drift(platform: tuple[Cluster, Site, Path]) -> None:
    cluster, site, work = platform
    dept = await set_up_department(site, uuid.uuid4().hex[:6].upper())
    admin = site.headers("admin", username="e2e-consistency")
    # A: registered and ordered at the desk, booked, checked in (a live queue entry).
    a = Journey(site, dept, work)
    await a.register_by_api()
    await a.order_on_bus()
    await a.book()
    await a.check_in()
    # B: booked, then cancelled at the desk.
    b = Journey(site, dept, work)
    await b.register_by_api()
    await b.order_on_bus()
    later = (datetime.now(TZ) + timedelta(minutes=30)).replace(second=0, microsecond=0)
    await b.book(later - timedelta(minutes=later.minute % 5))  # A has the next slot
    r = await site.api.post(f"/api/registration/orders/{b.accession}/cancel", headers=b.who("clerk"),
                            json={"reason": "患者取消检查"})
    assert r.status_code == 200, r.text
    # C and D: from the HIS over MLLP; D cancelled by ORC-1 CA.
    his_c, his_d = f"H{uuid.uuid4().hex[:8]}", f"H{uuid.uuid4().hex[:8]}"
    placer_c, placer_d = f"ORD{uuid.uuid4().hex[:8]}", f"ORD{uuid.uuid4().hex[:8]}"
    name_c, name_d = unique_name(), unique_name()
    for his, name, placer in ((his_c, name_c, placer_c), (his_d, name_d, placer_d)):
        await his_says(cluster, hl7("ORM^O01^ORM_O01", pid(his, f"{name[0]}^{name[1:]}", resident_id()), "PV1|1|O",
                                    f"ORC|NW|{placer}", "OBR|1|||CT-CHEST^胸部CT平扫" + "|" * 20 + "CT"))
    await his_says(cluster, hl7("ORM^O01^ORM_O01", pid(his_d, f"{name_d[0]}^{name_d[1:]}"),
                                f"ORC|CA|{placer_d}" + "|" * 14 + "^重复开单", "OBR|1|||CT-CHEST^胸部CT平扫"))
    async with database(cluster) as db:
        orders = {r["placer_order_number"]: dict(r) for r in await db.fetch(
            "SELECT placer_order_number, accession_number, empi_id, status FROM registration.exam_order "
            "WHERE placer_order_number = ANY($1::text[])", [placer_c, placer_d])}
    assert orders[placer_d]["status"] == "cancelled" and orders[placer_c]["status"] == "ordered"
    await eventually(lambda: site.log.has("order.cancelled", orders[placer_d]["accession_number"]),
                     "order.cancelled from the HIS on the bus")
    report = await no_drift(cluster)
    assert report.checked["registration"] == 4
    assert all(report.checked[s] >= 4 for s in consistency.COPIES if s != "critical_values"), report.checked
    # The endpoint says the same.
    r = await site.api.get("/api/registration/admin/consistency", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["drift_count"] == 0 and r.json()["complete"] is True, r.json()
    STATE.update(a=a, b=b, c=orders[placer_c], d=orders[placer_d], his_c=his_c, name_c=name_c)


def _find(report: consistency.Report, **match: Any) -> list[consistency.Drift]:
    return [d for d in report.drifts if all(getattr(d, k) == v for k, v in match.items())]


async def test_drifts_made_on_purpose_are_listed(platform: tuple[Cluster, Site, Path]) -> None:
    cluster, site, _ = platform
    if not STATE:
        pytest.skip("needs the orders of the first test")
    a, b = STATE["a"], STATE["b"]
    async with database(cluster) as db:
        saved = {
            "queue name": await db.fetchval("SELECT patient_name FROM queue_calling.exam WHERE accession_number = $1",
                                            a.accession),
            "print empi": await db.fetchval("SELECT empi_id FROM print_scp.studies WHERE accession_number = $1",
                                            a.accession),
            "order_info": await db.fetchrow("SELECT * FROM critical_values.order_info WHERE accession_number = $1",
                                            a.accession),
            "sex": await db.fetchval("SELECT sex FROM registration.empi_person WHERE empi_id = $1", a.empi_id),
        }
        try:
            # A service's copy changed behind the events' back...
            await db.execute("UPDATE queue_calling.exam SET patient_name = '某某某' WHERE accession_number = $1",
                             a.accession)
            await db.execute("UPDATE print_scp.studies SET empi_id = 'E-NOBODY' WHERE accession_number = $1",
                             a.accession)
            await db.execute("UPDATE worklist.scheduled_procedure_steps SET status = 'scheduled' "
                             "WHERE accession_number = $1", b.accession)
            await db.execute("DELETE FROM critical_values.order_info WHERE accession_number = $1", a.accession)
            await db.execute("INSERT INTO reporting.exam (accession_number, empi_id, patient_name) "
                             "VALUES ('NOSUCH-ACC', $1, 'X')", a.empi_id)
            # ...and registration changed with no event published for it.
            new_sex = "M" if saved["sex"] != "M" else "F"
            await db.execute("UPDATE registration.empi_person SET sex = $2 WHERE empi_id = $1", a.empi_id, new_sex)

            report = await consistency.check_settled(connect(cluster), settle=1)
            assert report.exit_code == 1
            [d] = _find(report, service="queue_calling", subject=a.accession, field="name",
                        record=f"exam {a.accession}")
            assert (d.registration, d.value, d.kind, d.empi_id) == (a.name, "某某某", "demographics", a.empi_id)
            [d] = _find(report, service="print_scp", subject=a.accession, field="empi_id")
            assert (d.registration, d.value, d.kind) == (a.empi_id, "E-NOBODY", "identity")
            [d] = _find(report, service="worklist", subject=b.accession, field="status")
            assert (d.registration, d.value, d.kind) == ("cancelled", "scheduled", "cancelled-but-active")
            [d] = _find(report, service="critical_values", subject=a.accession, field="order")
            assert (d.registration, d.value, d.kind) == ("ordered", None, "missing-order")
            [d] = _find(report, service="reporting", subject="NOSUCH-ACC")
            assert (d.field, d.registration, d.value, d.kind) == ("order", None, "NOSUCH-ACC", "unknown-order")
            sex = {d.service for d in _find(report, subject=a.accession, field="sex")}
            # every copy holding A's sex (critical-values' was deleted above)
            assert sex == {"worklist", "scheduling", "queue_calling", "reporting", "print_scp", "patient_portal"}, \
                report.table()
            assert all(d.registration == new_sex for d in _find(report, subject=a.accession, field="sex"))
            assert not _find(report, subject=STATE["c"]["accession_number"]), report.table()

            # The CLI: a table, --json, exit 1.
            code, out = await cli(cluster, "--settle", "1")
            assert code == 1, out
            assert "某某某" in out and "cancelled-but-active" in out and "NOSUCH-ACC" in out
            assert f"{len(report.drifts)} drift(s)" in out, out
            code, out = await cli(cluster, "--json", "--service", "worklist")
            assert code == 1, out
            listed = json.loads(out)
            assert {d["service"] for d in listed["drifts"]} == {"worklist"}
            assert {"service": "worklist", "subject": b.accession, "field": "status", "registration": "cancelled",
                    "service_value": "scheduled", "kind": "cancelled-but-active"}.items() <= next(
                        d for d in listed["drifts"] if d["field"] == "status").items()

            # The endpoint: the same list, to administrators only, audited per patient named.
            r = await site.api.get("/api/registration/admin/consistency", headers=site.headers("admin", username="cc"))
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["drift_count"] == len(report.drifts)
            assert {(d["service"], d["field"]) for d in body["drifts"]} == {(d.service, d.field) for d in report.drifts}
            rows = await db.fetch("SELECT entity, patient_id, actor FROM audit.audit_log WHERE actor = 'cc' "
                                  "AND action = 'read' ORDER BY seq")
            assert [r["entity"] for r in rows][0] == "consistency"
            assert {r["patient_id"] for r in rows if r["entity"] == "patient"} == set(report.patients())
            assert a.empi_id in report.patients()
        finally:
            await db.execute("UPDATE queue_calling.exam SET patient_name = $2 WHERE accession_number = $1",
                             a.accession, saved["queue name"])
            await db.execute("UPDATE print_scp.studies SET empi_id = $2 WHERE accession_number = $1",
                             a.accession, saved["print empi"])
            await db.execute("UPDATE worklist.scheduled_procedure_steps SET status = 'cancelled' "
                             "WHERE accession_number = $1", b.accession)
            info = saved["order_info"]
            await db.execute(f"INSERT INTO critical_values.order_info ({', '.join(info.keys())}) VALUES "
                             f"({', '.join(f'${i + 1}' for i in range(len(info)))}) ON CONFLICT DO NOTHING",
                             *info.values())
            await db.execute("DELETE FROM reporting.exam WHERE accession_number = 'NOSUCH-ACC'")
            await db.execute("UPDATE registration.empi_person SET sex = $2 WHERE empi_id = $1", a.empi_id,
                             saved["sex"])
    code, out = await cli(cluster)
    assert code == 0, out
    assert "0 drift(s)" in out


async def test_cli_exits_2_when_it_cannot_check(platform: tuple[Cluster, Site, Path]) -> None:
    cluster, _, _ = platform
    code, out = await cli(cluster, database_url=cluster.direct_database_url.rsplit("/", 1)[0] + "/no_such_db_cc")
    assert code == 2 and "consistency check failed" in out, out
    async with database(cluster) as db:  # a service's copy unreadable: the check is incomplete, exit 2
        await db.execute("ALTER TABLE critical_values.order_info RENAME TO order_info_away")
        try:
            code, out = await cli(cluster)
        finally:
            await db.execute("ALTER TABLE critical_values.order_info_away RENAME TO order_info")
    assert code == 2 and "ERROR critical_values" in out, out


async def test_the_endpoint_is_for_administrators(platform: tuple[Cluster, Site, Path]) -> None:
    _, site, _ = platform
    r = await site.api.get("/api/registration/admin/consistency")
    assert r.status_code == 401, r.text
    for role in ("clerk", "it-ops", "nurse", "radiologist"):
        r = await site.api.get("/api/registration/admin/consistency", headers=site.headers(role))
        assert r.status_code == 403, (role, r.text)


async def test_a08_and_a40_reach_every_copy(platform: tuple[Cluster, Site, Path]) -> None:
    """A demographic update (ADT^A08) and a merge (ADT^A40) from the HIS: every copy of the merged
    patient's orders shows the survivor, with the updated name."""
    cluster, site, _ = platform
    if not STATE:
        pytest.skip("needs the orders of the first test")
    his_c, c = STATE["his_c"], STATE["c"]
    his_e, placer_e, name_e = f"H{uuid.uuid4().hex[:8]}", f"ORD{uuid.uuid4().hex[:8]}", unique_name()
    await his_says(cluster, hl7("ORM^O01^ORM_O01", pid(his_e, f"{name_e[0]}^{name_e[1:]}", resident_id(), sex="M",
                                                       dob="19700101"),
                                "PV1|1|O", f"ORC|NW|{placer_e}", "OBR|1|||CT-CHEST^胸部CT平扫" + "|" * 20 + "CT"))
    renamed = unique_name()
    await his_says(cluster, hl7("ADT^A08^ADT_A01", "EVN|A08", pid(his_c, f"{renamed[0]}^{renamed[1:]}")))
    await his_says(cluster, hl7("ADT^A40^ADT_A39", "EVN|A40", pid(his_c, f"{renamed[0]}^{renamed[1:]}"),
                                f"MRG|{his_e}^^^HIS^PI"))
    async with database(cluster) as db:
        acc_e = await db.fetchval("SELECT accession_number FROM registration.exam_order WHERE placer_order_number = $1",
                                  placer_e)
    mine = {c["accession_number"], acc_e}
    last: list[list[consistency.Drift]] = [[]]

    async def converged() -> bool:
        last[0] = [d for d in (await drifts_now(cluster)).drifts if d.subject in mine]
        return not last[0]

    try:
        await eventually(converged, "the update and the merge in every copy", within=60)
    except AssertionError:
        shown = consistency.Report(drifts=last[0])
        print("\n" + shown.table())
        raise AssertionError("drifts after A08 + A40:\n" + shown.table()) from None
