"""The consistency check's judgement, without a platform: who an order belongs to after merges, which
fields a copy is compared on, how the MWL name is formed, and what settling keeps. (The check against
the running platform, its CLI and endpoint: tests/e2e/test_consistency.py.)"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

from imaging_common import consistency
from imaging_common.consistency import Drift, Order, Person, Reference, Report, _Collector


def person(empi: str, pid: str, name: str = "张三", *, merged_into: str | None = None, sex: str = "F",
           born: date | None = date(1980, 1, 1), latin: str | None = None) -> Person:
    return Person(empi, pid, "merged" if merged_into else "active", merged_into, name, latin, born, sex)


def reference() -> Reference:
    persons = [person("E1", "P1", "李四"), person("E2", "P2", "李思", merged_into="E1"),
               person("E3", "P3", merged_into="E2"),  # merged into a record merged in turn
               person("L1", "PL1", merged_into="L2"), person("L2", "PL2", merged_into="L1")]  # a loop never hangs
    orders = [Order("A1", "o1", "E1", "ordered"), Order("A2", "o2", "E2", "ordered"),
              Order("A3", "o3", "E3", "cancelled")]
    return Reference({p.empi_id: p for p in persons}, {o.accession_number: o for o in orders})


def test_orders_belong_to_the_survivor_at_the_end_of_the_merge_chain() -> None:
    ref = reference()
    assert ref.patient_of("A2").empi_id == "E1"  # type: ignore[union-attr]
    assert ref.patient_of("A3").empi_id == "E1"  # type: ignore[union-attr]
    assert ref.survivor("NOBODY") is None
    assert ref.survivor("L1") is not None


def test_a_copy_is_compared_only_on_the_fields_it_holds() -> None:
    ref = reference()
    c = _Collector(ref, "queue_calling")
    # A merged patient's order still showing the merged record: identity drifts, named after the survivor.
    c.patient("A2", "exam A2", {"empi_id": "E2", "patient_id": "P2", "name": "李四", "sex": "", "birth_date": None})
    found = {(d.field, d.registration, d.value, d.kind) for d in c.drifts}
    assert found == {("empi_id", "E1", "E2", "identity"), ("patient_id", "P1", "P2", "identity"),
                     ("sex", "F", "U", "demographics"), ("birth_date", "1980-01-01", None, "demographics")}
    assert {d.empi_id for d in c.drifts} == {"E1"}
    c.drifts.clear()
    c.patient("A1", "appointment x", {"empi_id": "E1"})  # an appointment holds only the EMPI id
    c.patient("A1", "queue_entry y", {"empi_id": "E1", "patient_id": "P1", "name": "李四", "sex": "F"})
    assert c.drifts == []
    # Sex unknown is the same whether empty, U or missing; a date is a date whatever its type.
    ref.persons["E1"] = person("E1", "P1", "李四", sex="U", born=None)
    c.patient("A1", "exam A1", {"empi_id": "E1", "sex": None, "birth_date": None, "name": " 李四 "})
    assert c.drifts == []


def test_unknown_and_cancelled_orders() -> None:
    ref = reference()
    ref.external = {"IMPORTED"}
    c = _Collector(ref, "worklist")
    assert c.order("NOPE", "steps S1", "E1") is None and c.order("IMPORTED", "steps S2") is None
    c.patient("NOPE", "steps S1", {"empi_id": "E9", "name": "x"})  # the unknown order is the one drift
    c.cancelled_but(ref.orders["A3"], True, "scheduled", "steps S3")
    c.cancelled_but(ref.orders["A3"], False, "in_progress", "steps S4")  # the modality's to finish
    c.missing(["A1"], "scheduled_procedure_steps")  # A2 missing; A3 cancelled: not expected
    assert [(d.subject, d.field, d.registration, d.value, d.kind) for d in c.drifts] == [
        ("NOPE", "order", None, "NOPE", "unknown-order"),
        ("A3", "status", "cancelled", "scheduled", "cancelled-but-active"),
        ("A2", "order", "ordered", None, "missing-order")]
    assert c.rows == 2


def test_the_worklist_gives_the_modality_the_latin_group_first() -> None:
    assert consistency.mwl_name(person("E", "P", "张三", latin="ZHANG^SAN")) == "ZHANG^SAN=张三"
    assert consistency.mwl_name(person("E", "P", "张三")) == "张三"
    assert consistency.mwl_name(person("E", "P", "SMITH^JOHN", latin="SMITH^JOHN")) == "SMITH^JOHN"


async def test_settling_keeps_only_the_drifts_seen_both_times(monkeypatch: Any) -> None:
    def drift(record: str, value: str) -> Drift:
        return Drift("worklist", "A1", "name", "李四", value, "demographics", record, "E1")

    looks = [Report(drifts=[drift("S1", "old"), drift("S2", "in flight")]),
             Report(drifts=[drift("S1", "older still"), drift("S3", "new")])]
    sleeps: list[float] = []

    async def fake_check(conn: Any, **kwargs: Any) -> Report:
        return looks.pop(0)

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[Any]:
        yield None

    monkeypatch.setattr(consistency, "check", fake_check)
    monkeypatch.setattr(consistency.asyncio, "sleep", fake_sleep)
    report = await consistency.check_settled(connect, settle=5)
    assert sleeps == [5]
    assert [(d.record, d.value) for d in report.drifts] == [("S1", "older still")]  # the second look's value
    assert report.transient == 1 and report.exit_code == 1 and report.settle_seconds == 5
    assert "1 drift(s)" in report.table() and "older still" in report.table()
    assert report.public()["drifts"][0]["service_value"] == "older still"
    # Nothing found at the first look: no second one.
    looks[:] = [Report()]
    report = await consistency.check_settled(connect, settle=5)
    assert sleeps == [5] and report.ok and report.exit_code == 0
    assert Report(errors=["worklist: gone"]).exit_code == 2
