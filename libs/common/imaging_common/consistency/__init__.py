"""Consistency check (issue 17, item 4): every service's copy of orders and patients against registration's.

Registration holds the truth: its orders (`exam_order`) and the EMPI golden records (`empi_person`).
An order belongs to the patient it was placed for, or — once that patient was merged — to the survivor
at the end of the `merged_into` chain (an unmerge sends it back, because the order keeps its own EMPI
id). Every copy another service keeps of that order must show that person: their EMPI id and PatientID,
and the name, sex and birth date of the golden record as it is now.

What is a drift (one row per copy row and field):

- `missing-order`: an order registration has (not cancelled) that a service holding every order lacks;
- `unknown-order`: a copy of an accession number registration never issued (worklist steps imported
  from an external RIS are not registration's orders and are left out, with what other services learnt
  of those accessions from the modality);
- `cancelled-but-active`: an order cancelled in registration still live in a service — a worklist step
  `scheduled`, a scheduling request `open` or appointment not yet fulfilled, a queue exam `active` or a
  queue entry waiting/called/skipped, a reporting exam on the radiologists' worklist with no report yet,
  a print study not `cancelled`, a film still matched to it. What the modality reported is not a drift:
  a step `in_progress`/`completed`/`discontinued` (MPPS), a queue entry `in_exam` or `done`, a queue exam
  `performed`, a `fulfilled` appointment, a reporting exam whose report was started (it stays with its
  radiologist). Critical values are not cancelled with their order (the finding must still reach a
  clinician), so they are only checked for identity;
- `identity`: `empi_id` or `patient_id` not the survivor's;
- `demographics`: `name`, `sex` or `birth_date` not registration's current value. A copy is compared
  only on the fields it holds (a queue entry has no birth date, an appointment only the EMPI id), and
  sex U, empty and missing are the same "unknown". The worklist holds the name as the DICOM PN the
  modality gets ("ZHANG^SAN=张三" when a Latin form is known), and only live steps (scheduled, in
  progress) follow the patient — a finished step is the record of what was performed, as the worklist
  documents; likewise only live queue entries.

The check reads every schema in one REPEATABLE READ transaction (one snapshot of the database), so a
change committed halfway through cannot make a drift. Events take a moment to propagate, though: with
`settle` the check runs again after that many seconds and reports only the drifts found both times.

    report = await check(conn)                        # one snapshot
    report = await check_settled(connect, settle=10)   # drifts that persist
    python -m imaging_common.consistency --settle 10 [--json]
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib.metadata import entry_points
from typing import Any

import asyncpg

from imaging_common.db import check_identifier
from imaging_common.dicom.names import person_name

log = logging.getLogger(__name__)

REFERENCE = "registration"
# The services whose copies are compared, by their ServiceSpec name.
COPIES = ("worklist", "scheduling", "queue_calling", "reporting", "print_scp", "critical_values", "patient_portal",
          "dashboard")
KINDS = ("missing-order", "unknown-order", "cancelled-but-active", "identity", "demographics")
IDENTITY_FIELDS = ("empi_id", "patient_id")
PATIENT_FIELDS = (*IDENTITY_FIELDS, "name", "sex", "birth_date")


@functools.cache
def service_schemas() -> dict[str, str]:
    """Service name -> its PostgreSQL schema, as the services name it (`ServiceSpec.schema`, found
    through the `imaging.services` entry points like the all-in-one runner does). A service not
    installed here keeps its default: the schema is the service's name."""
    schemas = {name: name for name in (REFERENCE, *COPIES)}
    for ep in entry_points(group="imaging.services"):
        try:
            spec = ep.load()
        except Exception as exc:  # a service that cannot be imported here: its default schema
            log.debug("service entry point %s not loaded: %s", ep.name, exc)
            continue
        if getattr(spec, "name", None) in schemas:
            schemas[spec.name] = spec.schema
    return schemas


# ---- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    service: str  # the service whose copy differs (ServiceSpec name)
    subject: str  # the accession number (or EMPI id when the copy is of a patient only)
    field: str  # status, order, empi_id, patient_id, name, sex, birth_date, film
    registration: str | None  # registration's value
    value: str | None  # the service's value
    kind: str  # one of KINDS
    record: str  # where, e.g. "scheduled_procedure_steps S000000012", "queue_entry <uuid>"
    empi_id: str | None = None  # the patient the subject belongs to in registration (survivor), when known

    @property
    def key(self) -> tuple[str, str, str]:
        return self.service, self.record, self.field

    def public(self) -> dict[str, Any]:
        return {"service": self.service, "subject": self.subject, "field": self.field,
                "registration": self.registration, "service_value": self.value, "kind": self.kind,
                "record": self.record, "empi_id": self.empi_id}


@dataclass
class Report:
    drifts: list[Drift] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # services that could not be read: the check is incomplete
    checked: dict[str, int] = field(default_factory=dict)  # service -> rows compared
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    settle_seconds: float = 0.0
    transient: int = 0  # drifts seen at the first look that were gone after settling

    @property
    def ok(self) -> bool:
        return not self.drifts and not self.errors

    @property
    def exit_code(self) -> int:
        """0 no drift, 1 drifts, 2 the check itself failed (a service could not be read)."""
        return 2 if self.errors else (1 if self.drifts else 0)

    def patients(self) -> list[str]:
        """EMPI ids of the patients the drifts name (what a reader of the report sees data of)."""
        return sorted({d.empi_id for d in self.drifts if d.empi_id})

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.drifts:
            k = f"{d.service} {d.kind} {d.field}"
            out[k] = out.get(k, 0) + 1
        return dict(sorted(out.items()))

    def public(self) -> dict[str, Any]:
        return {"drift_count": len(self.drifts), "drifts": [d.public() for d in self.drifts],
                "counts": self.counts(), "errors": self.errors, "checked": self.checked,
                "checked_at": self.checked_at.isoformat(), "settle_seconds": self.settle_seconds,
                "transient": self.transient, "complete": not self.errors}

    def to_json(self) -> str:
        return json.dumps(self.public(), ensure_ascii=False, indent=2)

    def table(self, width: int = 36) -> str:
        """The drifts as a readable table, then a summary line per service, kind and field."""
        def cut(v: str | None) -> str:
            s = "∅" if v is None else str(v)
            return s if len(s) <= width else s[: width - 1] + "…"

        head = ("SERVICE", "SUBJECT", "FIELD", "REGISTRATION", "SERVICE VALUE", "KIND", "RECORD")
        rows = [tuple(cut(x) for x in (d.service, d.subject, d.field, d.registration, d.value, d.kind, d.record))
                for d in self.drifts]
        lines = []
        if rows:
            widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
            for r in [head, *rows]:
                lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
            lines.append("")
            lines += [f"  {n:>5}  {k}" for k, n in self.counts().items()]
        checked = ", ".join(f"{s} {n}" for s, n in self.checked.items())
        settle = f", settled {self.settle_seconds:g} s ({self.transient} transient)" if self.settle_seconds else ""
        lines.append(f"{len(self.drifts)} drift(s); rows compared: {checked}{settle}")
        lines += [f"ERROR {e}" for e in self.errors]
        return "\n".join(lines)


# ---- registration: the reference ------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    empi_id: str
    patient_id: str
    status: str
    merged_into: str | None
    name: str
    name_latin: str | None
    birth_date: date | None
    sex: str


@dataclass(frozen=True)
class Order:
    accession_number: str
    order_id: str
    empi_id: str
    status: str  # ordered, cancelled

    @property
    def cancelled(self) -> bool:
        return self.status == "cancelled"


@dataclass
class Reference:
    persons: dict[str, Person]
    orders: dict[str, Order]
    external: set[str] = field(default_factory=set)  # accessions of worklist steps imported from elsewhere

    def survivor(self, empi_id: str | None) -> Person | None:
        """The active person an EMPI id stands for now (following merges), None when unknown."""
        seen: set[str] = set()
        person = self.persons.get(empi_id or "")
        while person is not None and person.status == "merged" and person.merged_into and person.empi_id not in seen:
            seen.add(person.empi_id)
            person = self.persons.get(person.merged_into)
        return person

    def patient_of(self, accession: str, held_empi_id: str | None = None) -> Person | None:
        """Whom a copy of this accession must show: its order's patient (survivor), or, for an order
        registration does not know, the survivor of the EMPI id the copy holds."""
        order = self.orders.get(accession)
        return self.survivor(order.empi_id if order else held_empi_id)


async def load_reference(conn: asyncpg.Connection, schema: str = REFERENCE) -> Reference:
    s = check_identifier(schema)
    persons = {r["empi_id"]: Person(**dict(r)) for r in await conn.fetch(
        f"SELECT empi_id, patient_id, status, merged_into, name, name_latin, birth_date, sex FROM {s}.empi_person")}
    orders = {r["accession_number"]: Order(**dict(r)) for r in await conn.fetch(
        f"SELECT accession_number, order_id::text AS order_id, empi_id, status FROM {s}.exam_order")}
    return Reference(persons, orders)


# ---- comparing ------------------------------------------------------------------------------


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, datetime | date):
        return v.isoformat()[:10] if isinstance(v, date) and not isinstance(v, datetime) else v.isoformat()
    s = str(v).strip()
    return s


def _sex(v: Any) -> str:
    s = (_text(v) or "").upper()
    return s if s in ("M", "F", "O") else "U"


def _birth(v: Any) -> str | None:
    s = _text(v)
    return s[:10] if s else None


def mwl_name(p: Person) -> str:
    """The PN value the worklist gives the modality for a registered patient (worklist.domain.steps.
    patient_pn): the Latin group first when there is one, e.g. "ZHANG^SAN=张三"."""
    if p.name.isascii() or not p.name_latin:
        return p.name
    return person_name(p.name_latin, p.name)


def _expected(p: Person, name_form: Callable[[Person], str] | None = None) -> dict[str, str | None]:
    return {"empi_id": p.empi_id, "patient_id": p.patient_id, "name": (name_form or (lambda x: x.name))(p),
            "sex": _sex(p.sex), "birth_date": _birth(p.birth_date)}


def _held(field_name: str, v: Any) -> str | None:
    if field_name == "sex":
        return _sex(v)
    if field_name == "birth_date":
        return _birth(v)
    return _text(v)


class _Collector:
    def __init__(self, ref: Reference, service: str) -> None:
        self.ref, self.service = ref, service
        self.drifts: list[Drift] = []
        self.rows = 0

    def add(self, subject: str, field_name: str, registration: Any, value: Any, kind: str, record: str,
            empi_id: str | None = None) -> None:
        self.drifts.append(Drift(self.service, subject, field_name, _text(registration), _text(value), kind, record,
                                 empi_id))

    def order(self, accession: str, record: str, held_empi_id: str | None = None) -> Order | None:
        """The registration order of a copy row; an unknown one is a drift (imports excepted)."""
        self.rows += 1
        order = self.ref.orders.get(accession)
        if order is None and accession not in self.ref.external:
            p = self.ref.survivor(held_empi_id)
            self.add(accession, "order", None, accession, "unknown-order", record, p.empi_id if p else None)
        return order

    def cancelled_but(self, order: Order | None, live: bool, value: Any, record: str,
                      field_name: str = "status") -> None:
        if order is not None and order.cancelled and live:
            p = self.ref.survivor(order.empi_id)
            self.add(order.accession_number, field_name, "cancelled", value, "cancelled-but-active", record,
                     p.empi_id if p else None)

    def patient(self, accession: str, record: str, held: Mapping[str, Any],
                name_form: Callable[[Person], str] | None = None) -> None:
        """Compare the fields this copy holds with the person the accession belongs to now (an order
        registration never issued is one drift already, unless imported: then its EMPI id decides)."""
        if accession not in self.ref.orders and accession not in self.ref.external:
            return
        p = self.ref.patient_of(accession, _text(held.get("empi_id")))
        if p is None:
            return
        want = _expected(p, name_form)
        for f in PATIENT_FIELDS:
            if f not in held:
                continue
            have = _held(f, held[f])
            if have != want[f]:
                self.add(accession, f, want[f], have, "identity" if f in IDENTITY_FIELDS else "demographics",
                         record, p.empi_id)

    def missing(self, present: Iterable[str], table: str) -> None:
        """Every order registration has (and has not cancelled) is held by this service."""
        have = set(present)
        for acc, order in self.ref.orders.items():
            if acc not in have and not order.cancelled:
                p = self.ref.survivor(order.empi_id)
                self.add(acc, "order", order.status, None, "missing-order", table, p.empi_id if p else None)


def _json(v: Any) -> dict[str, Any]:
    if v is None:
        return {}
    return json.loads(v) if isinstance(v, str) else dict(v)


# ---- each service's copy ---------------------------------------------------------------------


async def _worklist(conn: asyncpg.Connection, s: str, c: _Collector) -> None:
    rows = await conn.fetch(
        f"""SELECT sps_id, accession_number, source, status, empi_id, patient_id, patient_name, birth_date, sex
            FROM {s}.scheduled_procedure_steps ORDER BY accession_number, id""")
    for r in rows:
        record = f"scheduled_procedure_steps {r['sps_id']}"
        order = c.order(r["accession_number"], record, r["empi_id"])
        c.cancelled_but(order, r["status"] == "scheduled", r["status"], record)
        if r["status"] in ("scheduled", "in_progress"):  # a finished step records what was performed
            c.patient(r["accession_number"], record, {
                "empi_id": r["empi_id"], "patient_id": r["patient_id"], "name": r["patient_name"],
                "sex": r["sex"], "birth_date": r["birth_date"]}, name_form=mwl_name)
    c.missing((r["accession_number"] for r in rows), "scheduled_procedure_steps")


LIVE_APPOINTMENT = ("proposed", "pending", "booked", "arrived", "checked-in", "waitlist")


async def _scheduling(conn: asyncpg.Connection, s: str, c: _Collector) -> None:
    requests = await conn.fetch(
        f"SELECT order_id, exam_code, accession_number, empi_id, patient, status FROM {s}.exam_request "
        "ORDER BY accession_number, exam_code")
    for r in requests:
        record = f"exam_request {r['order_id']}/{r['exam_code']}"
        order = c.order(r["accession_number"], record, r["empi_id"])
        c.cancelled_but(order, r["status"] == "open", r["status"], record)
        p = _json(r["patient"])
        c.patient(r["accession_number"], record, {"empi_id": r["empi_id"], "patient_id": p.get("patient_id"),
                                                  "name": p.get("name"), "sex": p.get("sex"),
                                                  "birth_date": p.get("birth_date")})
    c.missing((r["accession_number"] for r in requests), "exam_request")
    for r in await conn.fetch(f"SELECT id::text AS id, accession_number, empi_id, status FROM {s}.appointment "
                              "ORDER BY accession_number, created_at"):
        record = f"appointment {r['id']}"
        order = c.order(r["accession_number"], record, r["empi_id"])
        c.cancelled_but(order, r["status"] in LIVE_APPOINTMENT, r["status"], record)
        c.patient(r["accession_number"], record, {"empi_id": r["empi_id"]})


async def _queue_calling(conn: asyncpg.Connection, s: str, c: _Collector) -> None:
    exams = await conn.fetch(
        f"""SELECT accession_number, order_status, empi_id, patient_id, patient_name, birth_date, sex
            FROM {s}.exam ORDER BY accession_number""")
    for r in exams:
        record = f"exam {r['accession_number']}"
        order = c.order(r["accession_number"], record, r["empi_id"])
        c.cancelled_but(order, r["order_status"] == "active", r["order_status"], record, "order_status")
        c.patient(r["accession_number"], record, {"empi_id": r["empi_id"], "patient_id": r["patient_id"],
                                                  "name": r["patient_name"], "sex": r["sex"],
                                                  "birth_date": r["birth_date"]})
    c.missing((r["accession_number"] for r in exams), "exam")
    for r in await conn.fetch(
            f"""SELECT entry_id::text AS entry_id, accession_number, state, empi_id, patient_id, patient_name, sex
                FROM {s}.queue_entry ORDER BY accession_number, arrived_at"""):
        record = f"queue_entry {r['entry_id']} ({r['state']})"
        order = c.order(r["accession_number"], record, r["empi_id"])
        c.cancelled_but(order, r["state"] in ("waiting", "called", "skipped"), r["state"], record, "state")
        if r["state"] in ("waiting", "called", "skipped", "in_exam"):  # a finished entry is the day's record
            c.patient(r["accession_number"], record, {"empi_id": r["empi_id"], "patient_id": r["patient_id"],
                                                      "name": r["patient_name"], "sex": r["sex"]})


async def _reporting(conn: asyncpg.Connection, s: str, c: _Collector) -> None:
    exams = await conn.fetch(
        f"""SELECT e.accession_number, e.status, e.empi_id, e.patient_id, e.patient_name, e.sex, e.patient,
                   (r.id IS NOT NULL) AS reported
            FROM {s}.exam e LEFT JOIN {s}.report r ON r.accession_number = e.accession_number
            ORDER BY e.accession_number""")
    for r in exams:
        record = f"exam {r['accession_number']}" + (" (reported)" if r["reported"] else "")
        order = c.order(r["accession_number"], record, r["empi_id"])
        c.cancelled_but(order, r["status"] != "cancelled" and not r["reported"], r["status"], record)
        if r["empi_id"] is None and r["status"] == "cancelled":
            continue  # a cancel's tombstone (it came before the order): it holds no patient
        shown = _json(r["patient"])  # exam.patient_id stays what a signature covers; the patient shown follows
        c.patient(r["accession_number"], record, {
            "empi_id": r["empi_id"], "patient_id": shown.get("patient_id") or r["patient_id"],
            "name": r["patient_name"], "sex": r["sex"], "birth_date": shown.get("birth_date")})
    c.missing((r["accession_number"] for r in exams), "exam")


async def _print_scp(conn: asyncpg.Connection, s: str, c: _Collector) -> None:
    studies = await conn.fetch(
        f"""SELECT study_instance_uid, accession_number, status, empi_id, patient_id, patient_name, patient
            FROM {s}.studies ORDER BY accession_number""")
    for r in studies:
        record = f"studies {r['study_instance_uid']}"
        order = c.order(r["accession_number"], record, r["empi_id"])
        c.cancelled_but(order, r["status"] != "cancelled", r["status"], record)
        p = _json(r["patient"])
        c.patient(r["accession_number"], record, {"empi_id": r["empi_id"], "patient_id": r["patient_id"],
                                                  "name": r["patient_name"], "sex": p.get("sex"),
                                                  "birth_date": p.get("birth_date")})
    c.missing((r["accession_number"] for r in studies), "studies")
    for r in await conn.fetch(
            f"""SELECT id::text AS id, accession_number, empi_id, patient_id, patient_name FROM {s}.films
                WHERE match_status = 'matched' AND accession_number IS NOT NULL ORDER BY accession_number"""):
        record = f"films {r['id']}"
        order = c.order(r["accession_number"], record, r["empi_id"])
        c.cancelled_but(order, True, "matched", record, "film")
        c.patient(r["accession_number"], record, {"empi_id": r["empi_id"], "patient_id": r["patient_id"],
                                                  "name": r["patient_name"]})


async def _critical_values(conn: asyncpg.Connection, s: str, c: _Collector) -> None:
    infos = await conn.fetch(f"SELECT accession_number, patient FROM {s}.order_info ORDER BY accession_number")
    for r in infos:
        record = f"order_info {r['accession_number']}"
        p = _json(r["patient"])
        c.order(r["accession_number"], record, p.get("empi_id"))
        c.patient(r["accession_number"], record, {k: p.get(k) for k in PATIENT_FIELDS})
    c.missing((r["accession_number"] for r in infos), "order_info")
    for r in await conn.fetch(f"SELECT critical_id, accession_number, patient_id, patient FROM {s}.critical_value "
                              "ORDER BY accession_number, raised_at"):
        record = f"critical_value {r['critical_id']}"
        p = _json(r["patient"])
        c.order(r["accession_number"], record, p.get("empi_id"))
        c.patient(r["accession_number"], record, {"empi_id": p.get("empi_id"), "patient_id": r["patient_id"],
                                                  "name": p.get("name"), "sex": p.get("sex"),
                                                  "birth_date": p.get("birth_date")})


async def _patient_portal(conn: asyncpg.Connection, s: str, c: _Collector) -> None:
    exams = await conn.fetch(f"SELECT x.accession_number, x.empi_id, x.status, p.patient FROM {s}.exam x "
                             f"JOIN {s}.patient p USING (empi_id) ORDER BY x.accession_number")
    for r in exams:
        record = f"exam {r['accession_number']}"
        order = c.order(r["accession_number"], record, r["empi_id"])
        c.cancelled_but(order, r["status"] != "cancelled", r["status"], record)
        p = _json(r["patient"])
        c.patient(r["accession_number"], record, {**{f: p.get(f) for f in PATIENT_FIELDS}, "empi_id": r["empi_id"]})
    c.missing((r["accession_number"] for r in exams), "exam")


async def _dashboard(conn: asyncpg.Connection, s: str, c: _Collector) -> None:
    """The statistics' copy: every order and who it is about (a cancelled order stays: it is history)."""
    exams = await conn.fetch(f"SELECT x.accession_number, x.empi_id, p.patient ->> 'name' AS patient_name "
                             f"FROM {s}.exam_fact x LEFT JOIN {s}.patient p USING (empi_id) "
                             "WHERE x.order_id IS NOT NULL ORDER BY x.accession_number")
    for r in exams:
        record = f"exam_fact {r['accession_number']}"
        c.order(r["accession_number"], record, r["empi_id"])
        c.patient(r["accession_number"], record, {"empi_id": r["empi_id"], "name": r["patient_name"]})
    c.missing((r["accession_number"] for r in exams), "exam_fact")


CHECKS = {"worklist": _worklist, "scheduling": _scheduling, "queue_calling": _queue_calling,
          "reporting": _reporting, "print_scp": _print_scp, "critical_values": _critical_values,
          "patient_portal": _patient_portal, "dashboard": _dashboard}


async def check(conn: asyncpg.Connection, *, schemas: Mapping[str, str] | None = None,
                services: Iterable[str] | None = None) -> Report:
    """One look at the database: every copy against registration, in one snapshot.

    Raises when registration itself cannot be read; a service that cannot be read (its schema absent,
    no privilege) is named in `Report.errors` and the others are still compared."""
    names = {**service_schemas(), **(schemas or {})}
    wanted = list(services) if services is not None else list(COPIES)
    unknown = [s for s in wanted if s not in CHECKS]
    if unknown:
        raise ValueError(f"no consistency check for {unknown}; known: {', '.join(COPIES)}")
    report = Report()
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        ref = await load_reference(conn, names[REFERENCE])
        if "worklist" in names:
            with contextlib.suppress(asyncpg.PostgresError):
                async with conn.transaction():  # imported steps are not registration's orders
                    ref.external = {r["accession_number"] for r in await conn.fetch(
                        f"SELECT DISTINCT accession_number FROM {check_identifier(names['worklist'])}"
                        ".scheduled_procedure_steps WHERE source = 'import'")} - ref.orders.keys()
        report.checked[REFERENCE] = len(ref.orders)
        for service in wanted:
            collector = _Collector(ref, service)
            try:
                async with conn.transaction():  # a savepoint: one service failing leaves the others readable
                    await CHECKS[service](conn, check_identifier(names[service]), collector)
            except asyncpg.PostgresError as exc:
                report.errors.append(f"{service}: {type(exc).__name__}: {exc}")
                continue
            report.drifts += collector.drifts
            report.checked[service] = collector.rows
    report.drifts.sort(key=lambda d: (d.service, d.subject, d.record, d.field))
    return report


Connect = Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]


async def check_settled(connect: Connect, settle: float = 0.0, **kwargs: Any) -> Report:
    """`check`, and when it finds drifts and `settle` > 0, again after `settle` seconds: only drifts
    seen both times (same service, record and field) are reported, with the values of the second look
    — a change still travelling on the bus at the first look is not a drift."""
    async with connect() as conn:
        first = await check(conn, **kwargs)
    if settle <= 0 or not first.drifts:
        first.settle_seconds = max(settle, 0.0)
        return first
    await asyncio.sleep(settle)
    async with connect() as conn:
        second = await check(conn, **kwargs)
    before = {d.key for d in first.drifts}
    kept = [d for d in second.drifts if d.key in before]
    second.transient = len(first.drifts) - len({d.key for d in kept})
    second.drifts, second.settle_seconds = kept, settle
    second.errors = sorted(set(first.errors) | set(second.errors))
    return second


def connector(database_url: str) -> Connect:
    """`connect` for check_settled from a database URL (a connection of its own each time)."""

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[asyncpg.Connection]:
        conn = await asyncpg.connect(database_url, timeout=10)
        try:
            yield conn
        finally:
            await conn.close()

    return connect


__all__ = ["COPIES", "KINDS", "Drift", "Reference", "Report", "check", "check_settled", "connector",
           "load_reference", "mwl_name", "service_schemas"]
