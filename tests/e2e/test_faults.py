"""Faults in the middle of a patient's journey (issue 11, part 3).

One cluster for the module: the seven services as processes (e2e.cluster), reaching PostgreSQL
through a TcpProxy the PostgreSQL fault cuts. A fault-free journey runs first as the reference; then
each fault runs its own patient in a department of its own:

- each service SIGKILLed where work is pending for it (an order just committed, an event produced
  while its consumer is down, a film spooled but not yet rendered, an ORU sent but not acknowledged,
  a critical value raised while its service is down), then restarted;
- RabbitMQ stopped (`rabbitmqctl stop_app`) while the modality performs and prints, then started;
- RabbitMQ unreachable for the services only (their AMQP goes through a TcpProxy the test cuts): every
  pod stays ready (degraded), the HIS feed, C-ECHO, worklist C-FIND and a print job are served, and the
  outboxes drain once the broker is back;
- PostgreSQL refusing connections for 10 s (requests meanwhile get 503 problem+json);
- a DICOM association cut mid-transfer: a C-FIND mid-stream and a print mid-image, then retried.

After each, the journey completes and the patient's effects equal the reference's: rows per table in
every service's schema, distinct event ids per type in the outboxes and on the bus, distinct HL7
control ids and FHIR payloads at the clinician system. With -s each fault prints what it checked.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from imaging_common.hl7 import Message
from imaging_testing.proxy import TcpProxy
from pydicom.uid import generate_uid

from e2e.cluster import Cluster, cluster_site
from e2e.faults import Checks, CuttingProxy, Effects, broker_stopped, effects_of
from e2e.journey import (
    FINDSCU,
    STEPS,
    Journey,
    Site,
    clear_of_local_midnight,
    eventually,
    mpps_complete,
    mpps_create,
    now_true,
    run,
    set_up_department,
    steps,
)

ECHOSCU = "/usr/bin/echoscu"  # DCMTK's (pynetdicom installs another earlier on PATH)
# What one patient leaves behind, by the table that holds it (matched by suffix in effects_of's keys).
KEY_EFFECTS = {
    "order": ".exam_order (accession_number)",
    "exam request": ".exam_request (accession_number)",
    "appointment": ".appointment (accession_number)",
    "queue entry": ".queue_entry (accession_number)",
    "worklist item": ".scheduled_procedure_steps (accession_number)",
    "film": ".films (accession_number)",
    "report": ".report (accession_number)",
    "critical value": ".critical_value (accession_number)",
}
OUTAGE_S = 10.0
TIMER_DRIVEN = "appointment.reminder"


@dataclass
class Platform:
    cluster: Cluster
    site: Site
    pg: TcpProxy
    mq: TcpProxy  # the services' way to RabbitMQ (the bus spy and the rest of the suite go direct)
    workdir: Path
    reference: Effects = field(default_factory=Effects)
    reference_deadlines: dict[str, float] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)

    async def bring_back(self, *names: str) -> None:
        """Start killed services again; like a pod's restart policy, a start that exits early is retried
        (on a shared PostgreSQL server the first attempt may meet "too many clients")."""
        for attempt in range(5):
            try:
                await self.cluster.start(*[n for n in names if not self.running(n)])
                return
            except AssertionError:
                if attempt == 4:
                    raise
                await asyncio.sleep(2)

    def running(self, name: str) -> bool:
        proc = self.cluster.services[name].proc
        return proc is not None and proc.poll() is None

    async def patient(self) -> Journey:
        await clear_of_local_midnight(margin_minutes=2)  # one patient's journey takes well under a minute
        dept = await set_up_department(self.site, uuid.uuid4().hex[:6].upper())
        return Journey(self.site, dept, self.workdir)

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.cluster.direct_database_url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    async def schema_of(self, table: str) -> str:
        rows = await self.sql("SELECT table_schema FROM information_schema.tables WHERE table_name = $1 "
                              "AND table_schema NOT IN ('public', 'pg_catalog')", table)
        assert len(rows) == 1, (table, rows)
        return rows[0]["table_schema"]

    async def films_in_total(self) -> int:
        schema = await self.schema_of("films")
        return (await self.sql(f'SELECT count(*) AS n FROM "{schema}".films'))[0]["n"]

    async def deadlines(self, j: Journey) -> dict[str, float]:
        """A critical value's deadlines as offsets from when it was raised, and its timers."""
        schema = await self.schema_of("critical_value")
        [cv] = await self.sql(f'SELECT raised_at, notify_due_at, ack_due_at FROM "{schema}".critical_value '
                              "WHERE critical_id = $1", j.critical_id)
        timers = await self.sql(f'SELECT kind, step, due_at FROM "{schema}".timer WHERE critical_id = $1 '
                                "ORDER BY kind, step, due_at", j.critical_id)
        out = {f"{k} - raised_at (s)": round((cv[k] - cv["raised_at"]).total_seconds())
               for k in ("notify_due_at", "ack_due_at") if cv[k] is not None}
        for t in timers:
            key = f"timer {t['kind']} step {t['step']}"
            out[key] = out.get(key, 0) + 1
        return out

    async def finish(self, j: Journey, checks: Checks, *, may_differ: dict[str, str] | None = None) -> None:
        """The journey is complete: every hop on the bus, and the effects are the reference's."""
        j.assert_every_hop_on_bus()
        fx = await effects_of(j, self.cluster.direct_database_url)
        for label, suffix in KEY_EFFECTS.items():
            [key] = [k for k in self.reference.counts if k.endswith(suffix)]
            checks.note(label, self.reference.counts[key], fx.counts.get(key, 0))
        def on_bus(counts: dict[str, int]) -> str:
            return " ".join(f"{k.removeprefix('bus ')}={n}" for k, n in counts.items() if k.startswith("bus "))

        checks.note("distinct event ids per type", "as fault-free", on_bus(fx.counts))
        if on_bus(fx.counts) != on_bus(self.reference.counts):
            checks.note("   ... fault-free journey", "-", on_bus(self.reference.counts))
        for key in ("HIS report ORU control ids", "HIS critical ORU control ids", "EMR report bundles (distinct)",
                    "EMR communications (distinct)"):
            checks.note(key, self.reference.counts.get(key), fx.counts.get(key))
        for note in fx.notes:
            checks.note("note", "-", note)
        allowed = dict(may_differ or {})
        for key in set(fx.counts) | set(self.reference.counts):
            if TIMER_DRIVEN in key:  # sent when the appointment draws near: depends on the clock, not the fault
                allowed[key] = "timer-driven, at most once"
                assert fx.counts.get(key, 0) <= 1, f"{key}: {fx.counts[key]}\n{checks.table()}"
        for key, why in allowed.items():
            checks.note(f"may differ: {key}", self.reference.counts.get(key, 0),
                        f"{fx.counts.get(key, 0)} ({why})")
        diffs = fx.differences(self.reference, may_differ=set(allowed))
        checks.note("all counts equal to the fault-free journey", f"{len(self.reference.counts)} counts",
                    "equal" if not diffs else f"{len(diffs)} differ")
        self.tables.append(checks.table())
        assert not diffs, "effects differ from a fault-free journey:\n  " + "\n  ".join(diffs) + "\n" + checks.table()


@pytest.fixture(scope="module")
async def platform(test_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    db = urlsplit(test_env["DATABASE_URL"])
    pg = TcpProxy(db.hostname or "127.0.0.1", db.port or 5432)
    await pg.start()
    amqp = urlsplit(test_env["AMQP_URL"])
    mq = TcpProxy(amqp.hostname or "127.0.0.1", amqp.port or 5672)
    await mq.start()
    workdir = tmp_path_factory.mktemp("faults")
    # A short delivery timeout: the lease of an HL7 delivery cut off by a kill expires sooner.
    # Small pools: one patient at a time, and the PostgreSQL server is shared with the rest of the suite.
    userinfo = amqp.netloc.rpartition("@")[0]
    extra = {"IMAGING_REPORTING_DELIVERY_TIMEOUT": "2", "IMAGING_DB_POOL_MAX": "3",
             "AMQP_URL": amqp._replace(netloc=f"{userinfo}@127.0.0.1:{mq.port}" if userinfo
                                       else f"127.0.0.1:{mq.port}").geturl()}
    try:
        async with cluster_site(test_env, workdir / "cluster", extra, database_port=pg.port) as (cluster, site):
            site.mllp_port = cluster.port("IMAGING_MLLP_PORT")  # registration's HIS feed
            p = Platform(cluster, site, pg, mq, workdir)
            j = await p.patient()
            await steps(j, STEPS[0], STEPS[-1])
            j.assert_every_hop_on_bus()
            p.reference = await effects_of(j, cluster.direct_database_url)
            p.reference_deadlines = await p.deadlines(j)
            yield p
            print("\n\nFaults: what was checked\n" + "\n".join(p.tables))
    finally:
        await pg.close()
        await mq.close()


@pytest.fixture(autouse=True)
async def healed(platform: Platform) -> AsyncIterator[None]:
    """Whatever a failed fault left broken (a service down, the database cut) is mended for the next."""
    yield
    await platform.pg.restore()
    await platform.mq.restore()
    down = [name for name in platform.cluster.services if not platform.running(name)]
    if down:
        await platform.bring_back(*down)


# ---- a service killed where work is pending for it -----------------------------------------------


async def test_registration_killed_after_an_order_is_committed(platform: Platform) -> None:
    p, checks = platform, Checks("registration SIGKILLed the moment an order is committed")
    j = await p.patient()
    schema = await p.schema_of("exam_order")

    async def crash() -> None:
        p.cluster.kill("registration")
        rows = await p.sql(f'SELECT published_at FROM "{schema}".outbox WHERE type = $1 AND envelope::text LIKE $2',
                           "order.created", f"%{j.accession}%")
        checks.note("order.created in the outbox at the kill", 1, len(rows))
        checks.note("   ... not yet relayed at the kill", "either", rows[0]["published_at"] is None if rows else "-")
        await p.bring_back("registration")

    await j.register_by_api(after_order=crash)
    await steps(j, "order_on_bus", STEPS[-1])
    await p.finish(j, checks)


async def test_scheduling_down_while_order_and_exam_events_are_produced(platform: Platform) -> None:
    p, checks = platform, Checks("scheduling SIGKILLed while order.created, then exam.started, are produced")
    j = await p.patient()
    p.cluster.kill("scheduling")
    await steps(j, "register_by_api", "order_on_bus")  # order.created waits in scheduling's queue
    await p.bring_back("scheduling")
    await steps(j, "book", "query_worklist")
    p.cluster.kill("scheduling")
    await j.start_exam()  # exam.started waits in scheduling's queue
    await p.bring_back("scheduling")
    await steps(j, "complete_exam", STEPS[-1])  # checks the appointment fulfilled
    await p.finish(j, checks)


async def test_worklist_down_while_order_and_appointment_events_are_produced(platform: Platform) -> None:
    p, checks = platform, Checks("worklist SIGKILLed while order.created and appointment.booked are produced")
    j = await p.patient()
    p.cluster.kill("worklist")
    await steps(j, "register_by_api", "book")
    await p.bring_back("worklist")
    await steps(j, "check_in", STEPS[-1])  # exactly one item on the modality's worklist
    await p.finish(j, checks)


async def test_queue_calling_down_while_appointment_and_exam_events_are_produced(platform: Platform) -> None:
    p, checks = platform, Checks("queue-calling SIGKILLed while appointment.booked, then exam.started, are produced")
    j = await p.patient()
    p.cluster.kill("queue-calling")
    await steps(j, "register_by_api", "book")
    await p.bring_back("queue-calling")
    await steps(j, "check_in", "query_worklist")
    p.cluster.kill("queue-calling")
    await performed_by_modality(j, complete=False)  # exam.started waits in the queue service's queue
    await p.bring_back("queue-calling")
    await eventually(lambda: j.entry_is("in_exam"), "queue entry in exam after the restart")
    await steps(j, "complete_exam", STEPS[-1])
    await p.finish(j, checks)


async def test_print_scp_killed_with_a_film_spooled(platform: Platform) -> None:
    p, checks = platform, Checks("print-scp SIGKILLed right after the N-ACTION (film spooled, not yet matched)")
    j = await p.patient()
    await steps(j, "register_by_api", "complete_exam")
    before = await p.films_in_total()
    await j.print_film()
    p.cluster.kill("print-scp")
    schema = await p.schema_of("films")
    rows = await p.sql(f'SELECT status, match_status FROM "{schema}".films ORDER BY created_at DESC LIMIT $1',
                       await p.films_in_total() - before)
    checks.note("films recorded at the kill (status/match)", "0 or 1",
                [f"{r['status']}/{r['match_status']}" for r in rows])
    checks.note("film.matched on the bus before the kill", False, j.site.log.has("film.matched", j.accession))
    await p.bring_back("print-scp")
    await steps(j, "film_matched", STEPS[-1])
    checks.check("films stored in total (all patients) by this print", 1, await p.films_in_total() - before)
    await p.finish(j, checks)


async def test_reporting_killed_with_an_oru_unacknowledged(platform: Platform) -> None:
    p, checks = platform, Checks("reporting SIGKILLed while its final ORU^R01 waits for the HIS's ACK")
    j = await p.patient()
    await steps(j, "register_by_api", "film_matched")
    held, gate = asyncio.Event(), asyncio.Event()

    def hold(message: Message) -> asyncio.Event | None:
        is_report = j.accession in str(message) and "critical_id=" not in message.field("NTE", 3)
        if is_report and message.field("OBR", 25) == "F" and not held.is_set():
            held.set()
            return gate
        return None

    j.site.clinician.hold_ack = hold
    try:
        await j.report()
        await eventually(lambda: now_true(held.is_set()), "the final ORU at the HIS, its ACK held back")
        p.cluster.kill("reporting")
    finally:
        j.site.clinician.hold_ack = None
        gate.set()
    await p.bring_back("reporting")
    # At-least-once: the delivery row (its payload, so its MSH-10, fixed when the report was signed)
    # is sent again once its lease expires; the HIS can drop the copy by control id.
    finals = await eventually(lambda: now_true(len([m for m in j.report_orus() if m.field("OBR", 25) == "F"]) >= 2),
                              "the final ORU sent again after the restart", within=60)
    assert finals
    f = [m for m in j.report_orus() if m.field("OBR", 25) == "F"]
    checks.check("final ORU copies at the HIS", 2, len(f))
    checks.check("distinct MSH-10 among the copies", 1, len({m.control_id for m in f}))
    checks.check("copies identical", True, len({str(m) for m in f}) == 1)
    schema = await p.schema_of("delivery")
    await eventually(lambda: _all_delivered(p, schema, j.report_id), "every delivery row of the report delivered")
    await steps(j, "report_delivered", STEPS[-1])
    await p.finish(j, checks)


async def _all_delivered(p: Platform, schema: str, report_id: str) -> bool:
    rows = await p.sql(f'SELECT status FROM "{schema}".delivery WHERE report_id = $1', report_id)
    return bool(rows) and all(r["status"] == "delivered" for r in rows)


async def test_critical_values_down_while_a_critical_value_is_raised(platform: Platform) -> None:
    p, checks = platform, Checks("critical-values SIGKILLed while critical.raised is produced")
    j = await p.patient()
    await steps(j, "register_by_api", "film_matched")
    p.cluster.kill("critical-values")
    await j.report()  # signing raises the critical value: critical.raised waits in the service's queue
    await p.bring_back("critical-values")
    await steps(j, "report_delivered", STEPS[-1])
    deadlines = await p.deadlines(j)
    for key, expected in p.reference_deadlines.items():
        checks.check(f"escalation {key}", expected, deadlines.get(key))
    await p.finish(j, checks)


# ---- the broker and the database away -------------------------------------------------------------


async def performed_by_modality(j: Journey, *, complete: bool = True) -> None:
    """MPPS IN PROGRESS (and COMPLETED) sent to the worklist SCP, without waiting for the events."""
    assert j.worklist_item is not None
    j.mpps_uid = j.mpps_uid or generate_uid()
    status = await asyncio.to_thread(mpps_create, j.site.worklist_port, j.mpps_uid, j.worklist_item, j.dept.station)
    assert status == 0x0000, hex(status)
    if complete:
        status = await asyncio.to_thread(mpps_complete, j.site.worklist_port, j.mpps_uid, j.dept.station)
        assert status == 0x0000, hex(status)


async def unpublished_rows(p: Platform) -> int:
    rows = await p.sql("SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox' "
                       "AND table_schema NOT IN ('public', 'pg_catalog')")
    total = 0
    for r in rows:
        [row] = await p.sql(f'SELECT count(*) AS n FROM "{r["table_schema"]}".outbox WHERE published_at IS NULL')
        total += row["n"]
    return total


async def _at_least(count: Awaitable[int], n: int) -> int:
    value = await count
    return value if value >= n else 0


async def test_rabbitmq_stopped_while_the_modality_performs_and_prints(platform: Platform) -> None:
    p, checks = platform, Checks("RabbitMQ stopped (stop_app) during the exam and the print, then started")
    j = await p.patient()
    await steps(j, "register_by_api", "query_worklist")
    before = await p.films_in_total()
    async with broker_stopped():
        started = time.monotonic()
        await performed_by_modality(j)  # MPPS accepted: exam.started/completed go to the worklist's outbox
        await j.print_film()  # the film is stored; film.printed goes to print-scp's outbox
        # exam.started, exam.completed, film.printed (once the film is rendered) wait in outboxes.
        waiting = await eventually(lambda: _at_least(unpublished_rows(p), 3), "events waiting in the outboxes")
        checks.note("events waiting in outboxes while the broker is down", ">= 3", waiting)
        checks.note("broker down before start_app (s)", "-", f"{time.monotonic() - started:.1f}")
    log = j.site.log
    for event_type in ("exam.started", "exam.completed"):
        await eventually(lambda t=event_type: now_true(log.has(t, j.accession)), f"{event_type} after the restart",
                         within=60)
    await eventually(lambda: j.entry_is("done"), "queue entry done", within=60)
    await eventually(lambda: j.appointment_is("fulfilled"), "the appointment fulfilled", within=60)
    await j.film_matched()
    checks.check("films stored by this print", 1, await p.films_in_total() - before)
    await steps(j, "report", STEPS[-1])
    await p.finish(j, checks)


async def readiness_of_every_service(p: Platform) -> dict[str, tuple[int, dict[str, Any]]]:
    """Each service's /readyz, straight to its process: (status, body)."""
    out = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for name, svc in p.cluster.services.items():
            r = await client.get(f"{svc.url}/api/{svc.prefix}/readyz")
            out[name] = (r.status_code, r.json())
    return out


async def dependency_up(p: Platform, name: str) -> str:
    svc = p.cluster.services[name]
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"{svc.url}/api/{svc.prefix}/metrics")).text
    up = dict(re.findall(r'^dependency_up\{.*?dependency="(\w+)".*\} ([01])\.0$', text, re.M))
    return f"rabbitmq {up.get('rabbitmq')}, postgresql {up.get('postgresql')}"


async def _all_degraded_by_the_broker(p: Platform) -> dict[str, tuple[int, dict[str, Any]]] | None:
    states = await readiness_of_every_service(p)
    return states if all(body.get("degraded") == ["rabbitmq"] for _, body in states.values()) else None


async def _all_ready(p: Platform) -> bool:
    return all(body["status"] == "ready" for _, body in (await readiness_of_every_service(p)).values())


async def test_rabbitmq_unreachable_listeners_keep_accepting(platform: Platform) -> None:
    """Issue 22, 2: with the broker unreachable (the services' AMQP cut at a proxy; the machine's RabbitMQ
    keeps running for everything else) every pod stays in its Service - /readyz 200, degraded - and the
    HIS feed over MLLP, C-ECHO, the worklist C-FIND and a print job are served; events wait in the
    outboxes and reach the bus once the broker is back; the journey then completes as fault-free."""
    p, checks = platform, Checks("RabbitMQ unreachable for the services (AMQP proxy cut), listeners keep accepting")
    j = await p.patient()
    await steps(j, "register_by_api", "query_worklist")
    his = Journey(j.site, j.dept, j.workdir)  # a second patient, sent by the HIS while the broker is away
    tag = uuid.uuid4().hex[:8]
    before = await p.films_in_total()
    await p.mq.cut()
    try:
        states = await eventually(lambda: _all_degraded_by_the_broker(p), "every service degraded by the broker")
        checks.check("services answering /readyz 200 (degraded: rabbitmq)", len(p.cluster.services),
                     sum(1 for status, body in states.values() if status == 200 and body["status"] == "degraded"))
        checks.check("dependency_up on /metrics (registration)", "rabbitmq 0, postgresql 1",
                     await dependency_up(p, "registration"))
        family, given = his.name[0], his.name[1:]
        pid = f"PID|1||HB{tag}^^^HIS^PI~{his.id_number}^^^CHN^NNCHN||{family}^{given}||19800101|M"
        adt = await his.his_says("ADT^A04^ADT_A01", "EVN|A04", pid, "PV1|1|O")  # asserts MSA-1 AA
        orm = await his.his_says("ORM^O01^ORM_O01", pid, "PV1|1|O",
                                 f"ORC|NW|PB{tag}|||||||||||||||^{his.dept.name}",
                                 "OBR|1|||CT-CHEST^胸部CT平扫" + "|" * 20 + "CT")
        checks.check("HIS ADT^A04 / ORM^O01 over MLLP acknowledged", "AA/AA",
                     f"{adt.field('MSA', 1)}/{orm.field('MSA', 1)}")
        r = await j.api.get("/api/registration/orders", params={"limit": 200}, headers=j.who("admin"))
        his.accession = next(o["accession_number"] for o in r.json()["data"] if o["placer_order_number"] == f"PB{tag}")
        checks.note("the HIS order stored, accession", "-", his.accession)
        for scp, port, calling, called in (("worklist", j.site.worklist_port, j.dept.station, "WORKLIST"),
                                           ("print", j.site.print_port, "DCMPRSCU", "PRINT_SCP")):
            await run(ECHOSCU, "-aet", calling, "-aec", called, "127.0.0.1", str(port), timeout=30)
            checks.check(f"C-ECHO to the {scp} SCP (echoscu exit 0)", True, True)
        items = await j.worklist_items()
        checks.check("worklist C-FIND (findscu): the patient's items", 1, len(items))
        await performed_by_modality(j)  # MPPS IN PROGRESS and COMPLETED accepted
        await j.print_film()  # N-ACTION answered and the job's N-EVENT-REPORT sent (asserted in print_film)
        checks.check("print job served (N-ACTION RSP, N-EVENT-REPORT)", True, True)
        # patient.registered + order.created (HIS), exam.started, exam.completed, film.printed at least.
        waiting = await eventually(lambda: _at_least(unpublished_rows(p), 5), "events waiting in the outboxes")
        checks.note("events waiting in outboxes while the broker is away", ">= 5", waiting)
        states = await readiness_of_every_service(p)
        checks.check("/readyz still 200 for every service after the work", len(p.cluster.services),
                     sum(1 for status, _ in states.values() if status == 200))
        checks.check("bus spy saw none of it meanwhile", False,
                     j.site.log.has("exam.started", j.accession) or j.site.log.has("order.created", his.accession))
    finally:
        await p.mq.restore()
    await eventually(lambda: _all_ready(p), "every service ready again (reconnected)", within=60)
    await eventually(lambda: _drained(p), "outboxes drained", within=60)
    checks.check("unpublished outbox rows after the broker is back", 0, await unpublished_rows(p))
    log = j.site.log
    for event_type, accession in (("order.created", his.accession), ("exam.started", j.accession),
                                  ("exam.completed", j.accession)):
        await eventually(lambda t=event_type, a=accession: now_true(log.has(t, a)), f"{event_type} on the bus",
                         within=60)
        checks.check(f"{event_type} arrived on the bus", True, True)
    await eventually(lambda: j.entry_is("done"), "queue entry done", within=60)
    await eventually(lambda: j.appointment_is("fulfilled"), "the appointment fulfilled", within=60)
    await j.film_matched()
    checks.check("films stored by this print", 1, await p.films_in_total() - before)
    await steps(j, "report", STEPS[-1])
    await p.finish(j, checks)


async def _drained(p: Platform) -> bool:
    return await unpublished_rows(p) == 0


async def test_postgresql_refuses_connections_for_ten_seconds(platform: Platform) -> None:
    p, checks = platform, Checks(f"PostgreSQL refusing connections for {OUTAGE_S:.0f} s right after an order")
    j = await p.patient()
    probes: list[tuple[str, int, str, float]] = []

    async def outage() -> None:
        await p.pg.cut()
        try:
            started = time.monotonic()
            while time.monotonic() - started < OUTAGE_S - 2:
                probes.extend(await probe_every_service(j))
                await asyncio.sleep(1)
            await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - started)))
        finally:
            await p.pg.restore()

    await j.register_by_api(after_order=outage)
    statuses = sorted({(what, status) for what, status, _, _ in probes})
    checks.note("requests during the outage", "503", ", ".join(f"{w}={s}" for w, s in statuses))
    checks.note("their content type", "problem+json", ", ".join(sorted({c for _, _, c, _ in probes})))
    slowest = max(s for _, _, _, s in probes)
    checks.note("slowest answer during the outage (s)", "< 6", f"{slowest:.2f}")
    assert probes and all(s == 503 for _, s, _, _ in probes), checks.table()
    assert all(c == "application/problem+json" for _, _, c, _ in probes), checks.table()
    assert slowest < 6, checks.table()
    await steps(j, "order_on_bus", STEPS[-1])
    await p.finish(j, checks)


async def probe_every_service(j: Journey) -> list[tuple[str, int, str, float]]:
    """One request per service that needs the database; (service, status, content type, seconds)."""
    admin = j.who("admin")
    requests = {
        "registration": ("GET", f"/api/registration/orders/{j.accession}", None),
        "scheduling": ("GET", "/api/scheduling/requests", None),
        "queue-calling": ("POST", "/api/queue/check-ins", {"kind": "barcode", "value": j.accession}),
        "worklist": ("GET", "/api/worklist/items", None),
        "print-scp": ("GET", "/api/print/films", {"accession_number": j.accession}),
        "reporting": ("GET", f"/api/reporting/exams/{j.accession}", None),
        "critical-values": ("GET", "/api/critical-values/critical-values", None),
    }

    async def one(name: str, method: str, path: str, body: Any) -> tuple[str, int, str, float]:
        started = time.monotonic()
        try:
            r = await j.api.request(method, path, headers=admin, timeout=15,
                                    **({"json": body} if method == "POST" else {"params": body}))
        except httpx.HTTPError as exc:
            return name, 0, type(exc).__name__, time.monotonic() - started
        return name, r.status_code, r.headers.get("content-type", ""), time.monotonic() - started

    return list(await asyncio.gather(*(one(n, *req) for n, req in requests.items())))


# ---- DICOM associations cut mid-transfer ----------------------------------------------------------


async def test_dicom_associations_cut_mid_transfer(platform: Platform) -> None:
    p, checks = platform, Checks("DICOM associations cut: a C-FIND mid-stream, a print mid-image; then retried")
    j = await p.patient()
    await steps(j, "register_by_api", "call")

    # C-FIND for every item of the day through a proxy that cuts at the first response.
    mwl = CuttingProxy("127.0.0.1", j.site.worklist_port)
    await mwl.start()
    try:
        mwl.arm(to_client_reads=2)  # read 1 is the A-ASSOCIATE-AC, read 2 the first C-FIND-RSP
        out = j.workdir / f"mwl-cut-{j.accession}"
        out.mkdir(parents=True, exist_ok=True)
        try:
            await run(FINDSCU, "-W", "-aet", j.dept.station, "-aec", "WORKLIST", "-X", "-od", str(out),
                      "-k", "PatientName", "-k", "AccessionNumber", "127.0.0.1", str(mwl.port), timeout=60)
            outcome = "findscu exited 0"
        except AssertionError as exc:
            outcome = (str(exc).splitlines() or ["?"])[0]
        checks.note("findscu after the cut (DCMTK exits 0 on an abort)", "-", outcome)
        checks.note("responses it got before the cut", "-", len(list(out.glob("rsp*.dcm"))))
        checks.note("reads from the SCP", "-", f"{mwl.reads} {mwl.moved}")
        checks.check("C-FIND association cut", True, mwl.tripped.is_set())
    finally:
        await mwl.close()
    await j.query_worklist()  # the SCP serves the next query; the patient's item is there once
    checks.note("next C-FIND: the patient's items", 1, 1)
    await j.start_exam()
    await j.complete_exam()

    # A large image (1024² at 12 bits, 2 MB), cut after 300 kB of it went to the print SCP.
    before = await p.films_in_total()
    prn = CuttingProxy("127.0.0.1", j.site.print_port)
    await prn.start()
    try:
        prn.arm(to_server=300_000)
        try:
            await j.print_film(port=prn.port, size=1024)
            outcome = "dcmprscu exited 0"
        except AssertionError as exc:
            outcome = (str(exc).splitlines() or ["print not completed (no N-EVENT-REPORT in the log)"])[0]
        checks.note("bytes sent before the cut", ">= 300 kB", prn.moved["to_server"])
        checks.note("dcmprscu after the cut", "fails", outcome)
        checks.check("print association cut mid-image", True, prn.tripped.is_set())
    finally:
        await prn.close()
    await asyncio.sleep(2)  # anything the SCP would (wrongly) make of the cut print would show by now
    checks.check("films stored from the cut print", 0, await p.films_in_total() - before)
    checks.check("films listed for the patient after the cut", 0, len(await j.films()))
    await j.print_film(size=1024)  # the modality prints again
    await steps(j, "film_matched", STEPS[-1])
    checks.check("films stored in total", 1, await p.films_in_total() - before)
    await p.finish(j, checks)
