"""docs/conformance/worklist.md against the SCP: its tables (marked `<!-- table: name -->`) are parsed and
compared with what the SCP negotiates and answers — every listed SOP class and transfer syntax is accepted
and nothing else, every listed attribute is a key the SCP knows with the matching it lists (and each listed
matching type finds the step and refuses a wrong value over DICOM), every listed status is reachable, the
listed character sets are accepted, the limits are the settings' defaults."""

from __future__ import annotations

import asyncio
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from imaging_common import db
from imaging_common.dicom.charsets import _STATELESS
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import generate_uid
from pynetdicom import AE, build_context
from worklist.adapters.dicom.mwl import MATCH_CODING_SCHEME, top_keys
from worklist.adapters.dicom.scp import WorklistSCP
from worklist.app import SERVICE
from worklist.settings import Settings

from .conftest import FINDSCU, World, busy_station, now_local, scp_settings
from .scu import find, mwl_query, n_create, n_set
from .swf import held
from .test_mpps import create_attrs, final_attrs

STATEMENT = Path(__file__).resolve().parents[3] / "docs" / "conformance" / "worklist.md"
Row = dict[str, str]


def tables() -> dict[str, list[Row]]:
    """Every marked table of the statement, as rows keyed by header."""
    out: dict[str, list[Row]] = {}
    for name, body in re.findall(r"<!-- table: ([\w-]+) -->\n((?:\|.*\n?)+)", STATEMENT.read_text(encoding="utf-8")):
        lines = [line.strip().strip("|").split("|") for line in body.strip().splitlines()]
        header = [h.strip() for h in lines[0]]
        out[name] = [dict(zip(header, (c.strip() for c in cells), strict=True)) for cells in lines[2:]]
    return out


TABLES = tables()


def test_the_statement_has_every_table() -> None:
    assert set(TABLES) >= {"sop-classes", "presentation-contexts", "association-limits", "attributes",
                           "cfind-statuses", "mpps-statuses", "charsets"}


# ---- SOP classes and presentation contexts ---------------------------------------------------------

NOT_LISTED_SOP = ["1.2.840.10008.5.1.4.1.2.1.1", "1.2.840.10008.5.1.4.1.1.2"]  # Patient Root Q/R FIND, CT Storage
NOT_LISTED_TS = ["1.2.840.10008.1.2.2", "1.2.840.10008.1.2.4.50"]  # Explicit VR Big Endian, JPEG Baseline


def _negotiate(port: int, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
    ae = AE(ae_title="CONFTEST")
    ae.requested_contexts = [build_context(sop, [ts]) for sop, ts in pairs]
    assoc = ae.associate("127.0.0.1", port, ae_title="WORKLIST")
    assert assoc.is_established
    try:
        return {(str(c.abstract_syntax), str(c.transfer_syntax[0])) for c in assoc.accepted_contexts}
    finally:
        assoc.release()


async def test_exactly_the_listed_presentation_contexts_are_accepted(scp: WorklistSCP) -> None:
    listed = {(r["Abstract Syntax UID"], r["Transfer Syntax UID"]) for r in TABLES["presentation-contexts"]}
    assert {r["Role"] for r in TABLES["presentation-contexts"]} == {"SCP"}
    sops = sorted({sop for sop, _ in listed}) + NOT_LISTED_SOP
    syntaxes = sorted({ts for _, ts in listed}) + NOT_LISTED_TS
    proposed = [(sop, ts) for sop in sops for ts in syntaxes]
    assert await asyncio.to_thread(_negotiate, scp.port, proposed) == listed
    provided = {r["SOP Class UID"] for r in TABLES["sop-classes"] if r["Provider of Service (SCP)"] == "Yes"}
    assert provided == {sop for sop, _ in listed}
    assert {r["User of Service (SCU)"] for r in TABLES["sop-classes"]} == {"No"}


# ---- association policies and limits -----------------------------------------------------------------

def test_listed_limits_are_the_defaults() -> None:
    limits = {r["Setting"]: r["Value"] for r in TABLES["association-limits"]}
    defaults = Settings()
    assert limits["IMAGING_WORKLIST_MAX_ASSOCIATIONS"] == str(defaults.worklist_max_associations)
    assert limits["IMAGING_WORKLIST_NETWORK_TIMEOUT"] == f"{defaults.worklist_network_timeout:g} s"
    assert limits["IMAGING_WORKLIST_MAX_RESULTS"].startswith(f"{defaults.worklist_max_results},")


def _reject_of(port: int, *, called: str = "WORKLIST", hold: bool = False) -> tuple[int, int, int] | None:
    ae = AE(ae_title="CONFTEST")
    ae.add_requested_context("1.2.840.10008.1.1")
    first = ae.associate("127.0.0.1", port, ae_title=called) if hold else None
    try:
        assoc = ae.associate("127.0.0.1", port, ae_title=called)
        if assoc.is_established:
            assoc.release()
            return None
        rsp = assoc.acceptor.primitive
        return (rsp.result, rsp.result_source, rsp.diagnostic) if rsp is not None else None
    finally:
        if first is not None and first.is_established:
            first.release()


async def test_listed_association_refusals(pool: asyncpg.Pool, scp: WorklistSCP) -> None:
    # a wrong called AE title: rejected-permanent, service-user, called-AE-title-not-recognized
    assert await asyncio.to_thread(_reject_of, scp.port, called="NOTWORKLIST") == (1, 1, 7)
    # beyond the association limit: rejected-transient, service-provider (presentation), local-limit-exceeded
    single = WorklistSCP(pool, scp_settings(worklist_max_associations=1), asyncio.get_running_loop())
    await asyncio.to_thread(single.start)
    try:
        assert await asyncio.to_thread(_reject_of, single.port, hold=True) == (2, 3, 2)
    finally:
        await asyncio.to_thread(single.stop)


# ---- attributes and their matching ----------------------------------------------------------------

Path_ = tuple[int, ...]


def _listed_attributes() -> dict[Path_, Row]:
    out: dict[Path_, Row] = {}
    parents: list[int] = []
    for row in TABLES["attributes"]:
        depth = len(row["Attribute Name"]) - len(row["Attribute Name"].lstrip(">"))
        tag = int(row["Tag"].strip("()").replace(",", ""), 16)
        parents = parents[:depth] + [tag]
        out[tuple(parents)] = row
    return out


def _registry(keys: Any = None, prefix: Path_ = ()) -> dict[Path_, Any]:
    out: dict[Path_, Any] = {}
    for key in (keys if keys is not None else top_keys().values()):
        path = (*prefix, int(key.tag))
        out[path] = key
        if key.items:
            out.update(_registry(key.items, path))
    return out


def _holds(key: Any) -> bool:
    return key.value is not None or any(_holds(k) for k in key.items or ())


def test_the_attribute_table_is_the_scp_key_registry() -> None:
    listed, known = _listed_attributes(), _registry()
    assert set(listed) == set(known)
    for path, row in listed.items():
        key = known[path]
        types = {t.strip() for t in row["Matching"].split(",")}
        matched = key.match is not None or bool(key.items and any(i.match for i in key.items))
        assert ("UNIV" == row["Matching"]) == (not matched), row
        assert ("SEQ" in types) == bool(key.items and matched), row
        assert row["Returned"] == ("value" if _holds(key) else "empty"), row


async def _full_step(world: World) -> Any:
    start = now_local().replace(hour=10, minute=15, second=30)
    step = await world.step(
        1, patient_name="ZHANG^SAN=张^三", issuer_of_patient_id="HOSP-A", birth_date=date(1980, 2, 3), sex="M",
        start_at=start, performing_physician="WANG^WU=王^五", admission_id="ZY2026001", station_name="CT1",
        location="CT室1", study_instance_uid="1.2.826.0.1.3680043.10.543.77")
    row = await world.conn.fetchrow("SELECT * FROM scheduled_procedure_steps WHERE accession_number = $1",
                                    step.accession_number)
    return step, row


def _values(kind: str, keyword: str, value: str) -> tuple[str, str]:
    """(a value of this matching type that matches `value`, one that does not)."""
    today, tomorrow = now_local().strftime("%Y%m%d"), (now_local() + timedelta(days=1)).strftime("%Y%m%d")
    first_group = value.split("=")[0]
    if keyword == "ScheduledProcedureStepStartDate":
        return {"SV": (today, tomorrow), "RANGE": (f"{today}-{today}", f"{tomorrow}-")}[kind]
    if keyword == "ScheduledProcedureStepStartTime":
        return {"SV": (value, "235959"), "RANGE": ("1000-1030", "2200-2300")}[kind]
    if keyword == "ScheduledProcedureStepStatus":
        return {"SV": (value, "COMPLETED"), "LIST": (f"COMPLETED\\{value}", "COMPLETED\\DISCONTINUED")}[kind]
    if keyword == "PatientSex":
        return {"SV": (value, "F"), "WC": ("?", "F*"), "LIST": (f"F\\{value}", "F\\O")}[kind]
    return {"SV": (value, "ZZNOMATCH"), "WC": (value[0] + "*", "ZZ*" if value[0] != "Z" else "QQ*"),
            "LIST": (f"ZZNOMATCH\\{first_group}", "ZZNOMATCH\\QQNOMATCH")}[kind]


def _query(world: World, path: list[str], value: str) -> Dataset:
    q = Dataset()
    q.SpecificCharacterSet = "ISO_IR 192"
    q.AccessionNumber = ""
    sps = Dataset()
    sps.ScheduledStationAETitle = world.station  # only this test's steps
    q.ScheduledProcedureStepSequence = [sps]
    node = q
    for keyword in path[:-1]:
        if keyword not in node:
            setattr(node, keyword, [Dataset()])
        node = getattr(node, keyword)[0]
    setattr(node, path[-1], value)
    return q


async def test_each_listed_matching_type_matches_over_dicom(scp: WorklistSCP, world: World) -> None:
    step, row = await _full_step(world)
    holds = held(step, row)
    cases: list[tuple[str, Dataset, bool]] = []
    known = _registry()
    for path, listed in _listed_attributes().items():
        keywords = [keyword_for_tag(Tag(t)) for t in path]
        types = [t.strip() for t in listed["Matching"].split(",") if t.strip() not in ("UNIV", "SEQ")]
        if "SEQ" in listed["Matching"]:  # a sequence: its item with a matching key finds the step, or not
            inner = next(k for k in known[path].items if k.match and k.match != MATCH_CODING_SCHEME)
            value = _dig(holds, [*keywords, inner.keyword])
            cases.append((f"{keywords} SEQ", _query(world, [*keywords, inner.keyword], value), True))
            cases.append((f"{keywords} SEQ no", _query(world, [*keywords, inner.keyword], "ZZNOMATCH"), False))
        for kind in types:
            held_value = _dig(holds, keywords)
            if keywords[-1] == "CodingSchemeDesignator":
                good, bad = {"SV": ("99IMG", "LN"), "WC": ("99*", "L*")}[kind]
            else:
                good, bad = _values(kind, keywords[-1], held_value)
            cases.append((f"{keywords} {kind}", _query(world, keywords, good), True))
            cases.append((f"{keywords} {kind} no", _query(world, keywords, bad), False))
    assert len(cases) > 60
    results = await find(scp.port, *(q for _, q, _ in cases))
    for (label, _, should_find), responses in zip(cases, results, strict=True):
        codes = [r[0] for r in responses]
        assert codes[-1] == 0x0000 and set(codes[:-1]) <= {0xFF00}, (label, codes)  # FF01: not matched on
        found = step.accession_number in {r[2].AccessionNumber for r in responses[:-1]}
        assert found == should_find, label


def _dig(tree: dict[str, Any], keywords: list[str]) -> str:
    node: Any = tree
    for keyword in keywords:
        node = node[keyword]
        if isinstance(node, list):
            node = node[0]
    return str(node)


# ---- statuses -----------------------------------------------------------------------------------------

async def test_every_listed_cfind_status_is_reachable(pool: asyncpg.Pool, scp: WorklistSCP, world: World,
                                                      test_env: dict[str, str]) -> None:
    listed = {int(r["Code"], 16) for r in TABLES["cfind-statuses"]}
    seen: set[int] = set()
    await world.step(1)
    await world.step(2)
    private = mwl_query(station=world.station)
    private.add_new(0x00091010, "LO", "")
    bad_date = mwl_query(station=world.station, date="20241345")
    for responses in await find(scp.port, mwl_query(station=world.station), private, bad_date):
        seen |= {r[0] for r in responses}
    small = WorklistSCP(pool, scp_settings(worklist_max_results=1), asyncio.get_running_loop())
    await asyncio.to_thread(small.start)
    try:
        [responses] = await find(small.port, mwl_query(station=world.station))
        seen |= {r[0] for r in responses}  # A700
    finally:
        await asyncio.to_thread(small.stop)
    async with busy_station(pool, world, "CONF", 20000) as roomy:
        # DCMTK's findscu cancels after the first response (pynetdicom's SCU cannot while flooded: test_findscu)
        proc = await asyncio.create_subprocess_exec(
            FINDSCU, "-W", "-v", "--cancel", "1", "-aet", "CT_MODALITY", "-aec", "WORKLIST", "-k", "PatientID",
            "-k", f"(0040,0100)[0].ScheduledStationAETitle={world.station}", "127.0.0.1", str(roomy.port),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        stdout, _ = await asyncio.wait_for(proc.communicate(), 60)
        if "Received Final Find Response (Cancel" in stdout.decode("utf-8", "replace"):
            seen.add(0xFE00)
    closed = await db.create_pool(test_env["DATABASE_URL"], SERVICE.schema, max_size=1)
    broken = WorklistSCP(closed, scp_settings(), asyncio.get_running_loop())
    await closed.close()  # the database is gone for this SCP: C001
    await asyncio.to_thread(broken.start)
    try:
        [responses] = await find(broken.port, mwl_query(station=world.station))
        seen |= {r[0] for r in responses}
    finally:
        await asyncio.to_thread(broken.stop)
    assert seen == listed


async def test_every_listed_mpps_status_is_reachable(scp: WorklistSCP, world: World) -> None:
    listed = {int(r["Code"], 16) for r in TABLES["mpps-statuses"]}
    await world.step(1)
    port, uid = scp.port, generate_uid()
    seen = {
        (await n_create(port, uid, create_attrs(world)))[0],  # 0000
        (await n_create(port, uid, create_attrs(world)))[0],  # 0111
        (await n_set(port, generate_uid(), final_attrs()))[0],  # 0112
        (await n_create(port, generate_uid(), create_attrs(world, PerformedStationAETitle=None)))[0],  # 0120
        (await n_create(port, generate_uid(), create_attrs(world, PerformedProcedureStepID="")))[0],  # 0121
        (await n_create(port, generate_uid(), create_attrs(world, PerformedProcedureStepStatus="COMPLETED")))[0],
        (await n_set(port, uid, final_attrs()))[0],  # 0000
        (await n_set(port, uid, final_attrs()))[0],  # 0110: already completed
    }
    assert seen == listed


# ---- character sets -----------------------------------------------------------------------------------

async def test_listed_character_sets_are_accepted_and_others_refused(scp: WorklistSCP, world: World) -> None:
    rows = TABLES["charsets"]
    await world.step(1, patient_name="SMITH^JOHN")
    terms = [r["Specific Character Set"] for r in rows if r["Query"] == "yes" and not r["Specific Character Set"]
             .startswith("(")]
    queries = []
    for term in terms:
        q = mwl_query(station=world.station)
        q.SpecificCharacterSet = term if not term.startswith("ISO 2022") or term == "ISO 2022 IR 6" else ["", term]
        queries.append(q)
    unknown = mwl_query(station=world.station)
    unknown.SpecificCharacterSet = "ISO_IR 999"
    results = await find(scp.port, mwl_query(station=world.station), *queries, unknown)
    for term, responses in zip(["(absent)", *terms], results[:-1], strict=True):
        assert [r[0] for r in responses] == [0xFF00, 0x0000], term
    assert [r[0] for r in results[-1]] == [0xA900]
    replies = {r["Specific Character Set"] for r in rows if r["Reply"] == "yes"} - {"(absent: default repertoire)"}
    assert replies == _STATELESS


@pytest.mark.parametrize("name", ["SOP Classes", "Accepted Presentation Contexts", "Support of Character Sets",
                                  "Security", "Association Acceptance Policy"])
def test_the_ps32_sections_are_there(name: str) -> None:
    assert name in STATEMENT.read_text(encoding="utf-8")
