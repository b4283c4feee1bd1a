"""The broad IHE SWF (RAD-5) worklist query — every K.6-1 return key, sequences with empty items
and empty UIDs, code sequences with Coding Scheme Version — sent by DCMTK's findscu (the query
built with dump2dcm) and by pynetdicom, in implicit and explicit VR: every item matches, with
pending status FF00 (every key is known), and every returned attribute is what the step holds.

Implicit VR carries no VR on the wire: a sequence key was once read as text, and the query
failed with A900 "ReferencedStudySequence is not valid ISO_IR 192 text".
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from worklist.adapters.dicom.scp import WorklistSCP

from .conftest import FINDSCU, World, now_local
from .scu import find
from .swf import as_tree, dump, expected, held, swf_query

DUMP2DCM = "/usr/bin/dump2dcm"


async def _steps(world: World) -> dict[str, tuple[object, object]]:
    """Two steps of today for the world's station: one holding every field we keep, one with no code."""
    start = now_local().replace(hour=10, minute=15, second=30)
    full = await world.step(
        1, patient_name="ZHANG^SAN=张^三", issuer_of_patient_id="HOSP-A", birth_date=date(1980, 2, 3), sex="M",
        study_instance_uid="1.2.826.0.1.3680043.10.543.7", start_at=start, end_at=start + timedelta(minutes=20),
        performing_physician="WANG^WU=王^五", description="胸部CT平扫", requested_procedure_description="胸部CT",
        priority="urgent", referring_physician="LI^SI=李^四", requesting_service="呼吸内科", admission_id="ZY2026001",
        current_location="5病区12床", reason="咳嗽两周", history="吸烟史", medical_alerts="对碘过敏",
        body_part="CHEST", laterality="L", contrast=True, station_name="CT1", location="CT室1")
    bare = await world.step(2, protocol_code="", description="", patient_name="李四")
    out = {}
    for step in (full, bare):
        row = await world.conn.fetchrow("SELECT * FROM scheduled_procedure_steps WHERE accession_number = $1",
                                        step.accession_number)
        out[step.accession_number] = (step, row)
    return out


def _check(replies: list[pydicom.Dataset], steps: dict[str, tuple[object, object]], query: pydicom.Dataset) -> None:
    assert sorted(r.AccessionNumber for r in replies) == sorted(steps)
    for reply in replies:
        step, row = steps[reply.AccessionNumber]
        assert as_tree(reply) == expected(query, held(step, row))  # type: ignore[arg-type]
        assert reply.get("SpecificCharacterSet") == "ISO_IR 192"


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian])
async def test_broad_swf_query_from_pynetdicom(scp: WorklistSCP, world: World, syntax: str) -> None:
    steps = await _steps(world)
    query = swf_query(station=world.station, date=now_local().strftime("%Y%m%d"))
    [responses] = await find(scp.port, query, syntax=syntax)
    assert [r[0] for r in responses] == [0xFF00, 0xFF00, 0x0000], [r[1] for r in responses]
    _check([r[2] for r in responses[:-1]], steps, query)  # type: ignore[misc]


@pytest.mark.parametrize("transfer", ["-xi", "-xe"])
async def test_broad_swf_query_from_dcmtk_findscu(scp: WorklistSCP, world: World, tmp_path: Path,
                                                  transfer: str) -> None:
    for tool in (FINDSCU, DUMP2DCM):
        if not Path(tool).exists():
            pytest.fail(f"{tool} is missing: install Debian's dcmtk (make system-deps)")
    steps = await _steps(world)
    query = swf_query(station=world.station, date=now_local().strftime("%Y%m%d"))
    (tmp_path / "query.dump").write_text(dump(query), encoding="utf-8")
    made = await asyncio.create_subprocess_exec(DUMP2DCM, str(tmp_path / "query.dump"), str(tmp_path / "query.dcm"),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await made.communicate()
    assert made.returncode == 0, out.decode()
    replies_dir = tmp_path / "replies"
    replies_dir.mkdir()
    proc = await asyncio.create_subprocess_exec(
        FINDSCU, "-W", transfer, "-aet", "CT_MODALITY", "-aec", "WORKLIST", "-v", "-X", "-od", str(replies_dir),
        "127.0.0.1", str(scp.port), str(tmp_path / "query.dcm"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    stdout, _ = await asyncio.wait_for(proc.communicate(), 60)
    log = stdout.decode("utf-8", "replace")
    assert proc.returncode == 0, log
    assert "Pending (FF00)" in log or "Pending" in log, log
    assert "Warning" not in log and "0xff01" not in log.lower(), log
    replies = [pydicom.dcmread(p) for p in sorted(replies_dir.glob("rsp*.dcm"))]
    assert len(replies) == 2, log
    _check(replies, steps, query)


async def test_code_sequences_match_item_by_item(scp: WorklistSCP, world: World) -> None:
    """Sequence matching (C.2.2.2.6) on our exam code: Code Value and Coding Scheme Designator in either code
    sequence; both sequences must match when both carry a value; a step without a code matches none."""
    await world.step(1, protocol_code="CT-CHEST")
    await world.step(2, protocol_code="", description="")

    def query(requested: dict[str, str] | None, protocol: dict[str, str] | None) -> Dataset:
        q = Dataset()
        q.AccessionNumber = ""
        sps = Dataset()
        sps.ScheduledStationAETitle = world.station
        if protocol is not None:
            sps.ScheduledProtocolCodeSequence = [_code(**protocol)]
        q.ScheduledProcedureStepSequence = [sps]
        if requested is not None:
            q.RequestedProcedureCodeSequence = [_code(**requested)]
        return q

    cases = [
        (query({"CodeValue": "CT-CHEST"}, None), {"A1"}),
        (query(None, {"CodeValue": "CT-*"}), {"A1"}),
        (query(None, {"CodeValue": "MR-HEAD\\CT-CHEST"}), {"A1"}),
        (query({"CodeValue": "MR-HEAD"}, None), set()),
        (query({"CodingSchemeDesignator": "99IMG"}, None), {"A1"}),  # every step with a code
        (query({"CodingSchemeDesignator": "LN"}, None), set()),
        (query({"CodeValue": "CT-CHEST"}, {"CodeValue": "CT-CHEST"}), {"A1"}),
        (query({"CodeValue": "CT-CHEST"}, {"CodeValue": "MR-HEAD"}), set()),  # both must match
        (query({"CodeValue": ""}, {"CodeMeaning": ""}), {"A1", "A2"}),  # return keys only
    ]
    results = await find(scp.port, *(q for q, _ in cases))
    for (q, wanted), responses in zip(cases, results, strict=True):
        assert [r[0] for r in responses][-1] == 0x0000 and {r[0] for r in responses[:-1]} <= {0xFF00}, q
        assert {r[2].AccessionNumber for r in responses[:-1]} == {world.id(a) for a in wanted}, q


def _code(**values: str) -> Dataset:
    item = Dataset()
    for k, v in values.items():
        setattr(item, k, v)
    return item


WLMSCPFS = "/usr/bin/wlmscpfs"


def _as_dataset(tree: dict[str, object]) -> Dataset:
    ds = Dataset()
    for keyword, value in tree.items():
        if isinstance(value, list):
            setattr(ds, keyword, [_as_dataset(item) for item in value])
        elif value:
            setattr(ds, keyword, value)
    return ds


def _common(ours: object, theirs: object) -> tuple[object, object]:
    """Both replies restricted to what both returned (wlmscpfs drops the keys it does not support)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        keys = ours.keys() & theirs.keys()
        pairs = {k: _common(ours[k], theirs[k]) for k in keys}
        return {k: a for k, (a, _) in pairs.items()}, {k: b for k, (_, b) in pairs.items()}
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        pairs_ = [_common(a, b) for a, b in zip(ours, theirs, strict=True)]
        return [a for a, _ in pairs_], [b for _, b in pairs_]
    return ours, theirs


async def test_broad_swf_query_answers_as_dcmtk_wlmscpfs_does(scp: WorklistSCP, world: World, tmp_path: Path) -> None:
    """The same items as DCMTK worklist files, the same broad query from findscu to both SCPs: the same items
    come back, and every attribute both return has the same value (wlmscpfs answers only the keys it knows)."""
    from imaging_testing import free_port
    from pydicom.dataset import FileMetaDataset
    from pynetdicom.sop_class import ModalityWorklistInformationFind  # type: ignore[attr-defined]

    for tool in (FINDSCU, DUMP2DCM, WLMSCPFS):
        if not Path(tool).exists():
            pytest.fail(f"{tool} is missing: install Debian's dcmtk (make system-deps)")
    steps = await _steps(world)
    folder = tmp_path / "wl" / "WORKLIST"
    folder.mkdir(parents=True)
    (folder / "lockfile").touch()
    for accession, (step, row) in steps.items():
        ds = _as_dataset(held(step, row))  # type: ignore[arg-type]
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ModalityWorklistInformationFind
        ds.file_meta.MediaStorageSOPInstanceUID = row["study_instance_uid"]
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        pydicom.dcmwrite(folder / f"{accession}.wl", ds, enforce_file_format=True)
    port = free_port()
    peer = await asyncio.create_subprocess_exec(WLMSCPFS, "-csk", "-dfr", "-dfp", str(tmp_path / "wl"), str(port),
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        query = swf_query(station=world.station, date=now_local().strftime("%Y%m%d"))
        (tmp_path / "query.dump").write_text(dump(query), encoding="utf-8")
        made = await asyncio.create_subprocess_exec(DUMP2DCM, str(tmp_path / "query.dump"),
                                                    str(tmp_path / "query.dcm"))
        assert await made.wait() == 0
        answers: dict[str, dict[str, dict[str, object]]] = {}
        for label, target in (("ours", scp.port), ("wlmscpfs", port)):
            out = tmp_path / label
            out.mkdir()
            for _ in range(100):  # wlmscpfs may still be starting
                proc = await asyncio.create_subprocess_exec(
                    FINDSCU, "-W", "-aet", "CT_MODALITY", "-aec", "WORKLIST", "-X", "-od", str(out), "127.0.0.1",
                    str(target), str(tmp_path / "query.dcm"), stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT)
                log, _ = await asyncio.wait_for(proc.communicate(), 60)
                if proc.returncode == 0:
                    break
                await asyncio.sleep(0.05)
            assert proc.returncode == 0, log.decode("utf-8", "replace")
            answers[label] = {d.AccessionNumber: as_tree(d) for d in map(pydicom.dcmread, sorted(out.glob("rsp*")))}
        assert set(answers["ours"]) == set(answers["wlmscpfs"]) == set(steps)
        for accession in steps:
            # Pregnancy Status (US, Type 2) held by nobody: wlmscpfs fills 4 ("unknown"), we return it
            # zero-length, which Type 2 allows and also means unknown
            assert answers["wlmscpfs"][accession].pop("PregnancyStatus") == "4"
            assert answers["ours"][accession].pop("PregnancyStatus") == ""
            ours, theirs = _common(answers["ours"][accession], answers["wlmscpfs"][accession])
            assert len(ours) > 40  # type: ignore[arg-type]
            assert ours == theirs, accession
    finally:
        peer.terminate()
        await peer.wait()
