"""The MWL queries the main modality vendors sold in China send (fixtures/mwl_queries/*.dump, each with
its source and what of it was verified), over DCMTK's findscu (the query file made by dump2dcm) and
pynetdicom: each is answered with exactly the matching items, pending FF00 (every key known), and every
returned attribute is what the step holds."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ImplicitVRLittleEndian
from worklist.adapters.dicom.scp import WorklistSCP

from .conftest import FINDSCU, World, now_local
from .scu import find
from .swf import as_tree, expected, held

DUMP2DCM = "/usr/bin/dump2dcm"
FIXTURES = Path(__file__).parent / "fixtures" / "mwl_queries"
VENDORS = sorted(p.stem for p in FIXTURES.glob("*.dump"))
# fixtures are UTF-8 text; the query file's bytes must be in the set it declares (dump2dcm copies values as
# they are), so these are re-encoded
FILE_ENCODING = {"neusoft_neuviz": "gb18030"}


def test_every_vendor_has_a_fixture_with_its_source() -> None:
    assert {v.split("_")[0] for v in VENDORS} == {"ge", "siemens", "philips", "united", "neusoft"}
    for vendor in VENDORS:
        head = (FIXTURES / f"{vendor}.dump").read_text(encoding="utf-8")
        assert "# Source" in head and "# Verified" in head, vendor


async def _steps(world: World) -> dict[str, tuple[object, object]]:
    """Today's steps on the world's station (two Zhangs, one Li), and one tomorrow."""
    made = [
        await world.step(1, patient_name="ZHANG^SAN=张^三", referring_physician="LI^SI=李^四", admission_id="ZY1",
                         current_location="5病区", medical_alerts="对碘过敏", priority="stat", body_part="CHEST"),
        await world.step(2, patient_name="张三丰", protocol_code="", description=""),
        await world.step(3, patient_name="LI^SI=李^四"),
    ]
    await world.step(4, start_at=now_local() + timedelta(days=1))
    out = {}
    for step in made:
        row = await world.conn.fetchrow("SELECT * FROM scheduled_procedure_steps WHERE accession_number = $1",
                                        step.accession_number)
        out[step.accession_number] = (step, row)
    return out


def _matches(query: pydicom.Dataset, steps: dict[str, tuple[object, object]]) -> set[str]:
    wanted = str(query.get("PatientName", "") or "")
    return {acc for acc, (step, _) in steps.items()
            if not wanted or any(g.startswith(wanted.rstrip("*")) for g in step.patient_name.split("="))}  # type: ignore[attr-defined]


async def _query_file(vendor: str, world: World, tmp_path: Path) -> Path:
    text = (FIXTURES / f"{vendor}.dump").read_text(encoding="utf-8")
    text = text.replace("@STATION@", world.station).replace("@TODAY@", now_local().strftime("%Y%m%d"))
    dump = tmp_path / "query.dump"
    dump.write_bytes(text.encode(FILE_ENCODING.get(vendor, "utf-8")))
    if not Path(DUMP2DCM).exists():
        pytest.fail(f"{DUMP2DCM} is missing: install Debian's dcmtk (make system-deps)")
    proc = await asyncio.create_subprocess_exec(DUMP2DCM, str(dump), str(tmp_path / "query.dcm"),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return tmp_path / "query.dcm"


def _check(replies: list[pydicom.Dataset], steps: dict[str, tuple[object, object]], query: pydicom.Dataset) -> None:
    assert {r.AccessionNumber for r in replies} == _matches(query, steps) and len(replies) == len(set(
        r.AccessionNumber for r in replies))
    for reply in replies:
        step, row = steps[reply.AccessionNumber]
        assert as_tree(reply) == expected(query, held(step, row))  # type: ignore[arg-type]


@pytest.mark.parametrize("vendor", VENDORS)
async def test_vendor_query_from_findscu(scp: WorklistSCP, world: World, tmp_path: Path, vendor: str) -> None:
    if not Path(FINDSCU).exists():
        pytest.fail(f"{FINDSCU} is missing: install Debian's dcmtk (make system-deps)")
    steps = await _steps(world)
    query_file = await _query_file(vendor, world, tmp_path)
    out = tmp_path / "replies"
    out.mkdir()
    proc = await asyncio.create_subprocess_exec(
        FINDSCU, "-W", "-aet", "CT_MODALITY", "-aec", "WORKLIST", "-v", "-X", "-od", str(out),
        "127.0.0.1", str(scp.port), str(query_file), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    stdout, _ = await asyncio.wait_for(proc.communicate(), 60)
    log = stdout.decode("utf-8", "replace")
    assert proc.returncode == 0, log
    assert "Warning" not in log and "Error" not in log and "Failed" not in log, log
    query = pydicom.dcmread(query_file)
    replies = [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]
    assert replies, log
    _check(replies, steps, query)


@pytest.mark.parametrize("vendor", VENDORS)
async def test_vendor_query_from_pynetdicom(scp: WorklistSCP, world: World, tmp_path: Path, vendor: str) -> None:
    steps = await _steps(world)
    query = pydicom.dcmread(await _query_file(vendor, world, tmp_path))
    del query.file_meta
    [responses] = await find(scp.port, query, syntax=ImplicitVRLittleEndian)
    assert {r[0] for r in responses[:-1]} == {0xFF00} and responses[-1][0] == 0x0000, [r[1] for r in responses]
    _check([r[2] for r in responses[:-1]], steps, query)  # type: ignore[misc]
