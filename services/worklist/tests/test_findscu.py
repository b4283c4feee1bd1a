"""DCMTK's findscu as the modality (/usr/bin/findscu, not pynetdicom's findscu on PATH).

Chinese names in both encodings: the query's bytes are GB18030 or UTF-8 as a Chinese modality
would send them, and the replies DCMTK writes to disk (-X) are read back with their charset.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pydicom
import pytest
from worklist.adapters.dicom.scp import WorklistSCP

from .conftest import FINDSCU, World, busy_station, now_local, scp_settings


async def findscu(port: int, keys: list[bytes | str], out: Path, *, called: str = "WORKLIST",
                  verbose: bool = False, extract: bool = True) -> tuple[int, str]:
    prepare(out)
    args: list[bytes | str] = [FINDSCU, "-W", "-aet", "CT_MODALITY", "-aec", called]
    if extract:
        args += ["-X", "-od", str(out)]
    if verbose:
        args.append("-v")
    for key in keys:
        args += ["-k", key]
    args += ["127.0.0.1", str(port)]
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    stdout, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, stdout.decode("utf-8", "replace")


def prepare(out: Path) -> None:
    if not Path(FINDSCU).exists():
        pytest.fail(f"{FINDSCU} is missing: install Debian's dcmtk (make system-deps)")
    out.mkdir(parents=True, exist_ok=True)


def raw_replies(out: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(out.glob("rsp*.dcm")))


def replies(out: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


SPS_KEYS = [
    "(0040,0100)[0].ScheduledStationAETitle", "(0040,0100)[0].ScheduledProcedureStepStartDate",
    "(0040,0100)[0].ScheduledProcedureStepStartTime", "(0040,0100)[0].Modality",
    "(0040,0100)[0].ScheduledProcedureStepDescription", "(0040,0100)[0].ScheduledProcedureStepID",
    "(0040,0100)[0].ScheduledPerformingPhysicianName",
]
TOP_KEYS = ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyInstanceUID",
            "RequestedProcedureID", "RequestedProcedureDescription"]


def with_value(keys: list[str], **values: str) -> list[bytes | str]:
    out: list[bytes | str] = []
    for key in keys:
        name = key.rsplit(".", 1)[-1]
        out.append(f"{key}={values[name]}" if name in values else key)
    return out


async def test_findscu_sees_todays_items_with_chinese_names(scp: WorklistSCP, world: World, tmp_path: Path) -> None:
    await world.step(1, patient_name="ZHANG^SAN=张^三")
    await world.step(2, patient_name="李四")
    today = now_local().strftime("%Y%m%d")
    keys = with_value(TOP_KEYS + SPS_KEYS, ScheduledStationAETitle=world.station,
                      ScheduledProcedureStepStartDate=today)
    code, output = await findscu(scp.port, keys, tmp_path)
    assert code == 0, output
    got = replies(tmp_path)
    assert sorted(str(d.PatientName) for d in got) == ["ZHANG^SAN=张^三", "李四"], output
    for d in got:
        assert d.SpecificCharacterSet == "ISO_IR 192"
        sps = d.ScheduledProcedureStepSequence[0]
        assert sps.ScheduledStationAETitle == world.station and sps.ScheduledProcedureStepStartDate == today
        assert sps.ScheduledProcedureStepDescription == "胸部CT平扫"
        assert d.StudyInstanceUID and d.AccessionNumber.startswith("A")


@pytest.mark.parametrize("charset,codec", [("GB18030", "gb18030"), ("ISO_IR 192", "utf-8")])
async def test_findscu_chinese_name_query_in_either_encoding(
    scp: WorklistSCP, world: World, tmp_path: Path, charset: str, codec: str
) -> None:
    await world.step(1, patient_name="张三")
    await world.step(2, patient_name="ZHANG^SANFENG=张^三丰")
    await world.step(3, patient_name="王五")
    keys: list[bytes | str] = [f"SpecificCharacterSet={charset}", b"PatientName=" + "张*".encode(codec),
                               "PatientID", f"(0040,0100)[0].ScheduledStationAETitle={world.station}"]
    code, output = await findscu(scp.port, keys, tmp_path)
    assert code == 0, output
    got = replies(tmp_path)
    assert sorted(str(d.PatientName) for d in got) == ["ZHANG^SANFENG=张^三丰", "张三"], output
    assert {d.SpecificCharacterSet for d in got} == {charset}
    raw = raw_replies(tmp_path)
    assert "张三".encode(codec) in raw  # the bytes on the wire are in the modality's own set


async def test_findscu_one_character_wildcard_and_bad_date(scp: WorklistSCP, world: World, tmp_path: Path) -> None:
    await world.step(1, patient_name="张三")
    await world.step(2, patient_name="张三丰")
    keys: list[bytes | str] = ["SpecificCharacterSet=GB18030", b"PatientName=" + "张?".encode("gb18030"),
                               f"(0040,0100)[0].ScheduledStationAETitle={world.station}"]
    code, output = await findscu(scp.port, keys, tmp_path / "one")
    assert code == 0, output
    assert [str(d.PatientName) for d in replies(tmp_path / "one")] == ["张三"]  # ? is one character (2 bytes)
    code, output = await findscu(scp.port, [f"(0040,0100)[0].ScheduledStationAETitle={world.station}",
                                            "(0040,0100)[0].ScheduledProcedureStepStartDate=20241399"],
                                 tmp_path / "bad", verbose=True)
    assert replies(tmp_path / "bad") == []
    assert "DataSetDoesNotMatchSOPClass" in output, output  # DCMTK's name for A900


async def test_a_long_stream_is_not_taken_for_an_idle_association(pool, world: World, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """pynetdicom aborts an association whose peer was silent for the network timeout, and it
    checks right after a C-FIND: a modality reading thousands of responses says nothing meanwhile."""
    settings = scp_settings(worklist_network_timeout=1.0, worklist_max_results=10000)
    impatient = WorklistSCP(pool, settings, asyncio.get_running_loop())
    await asyncio.to_thread(impatient.start)
    try:
        await world.conn.execute(
            """INSERT INTO scheduled_procedure_steps (accession_number, protocol_code, source, patient_id,
                   patient_name, pn_alpha, modality, station_ae_title, start_at)
               SELECT 'L' || $1 || g, 'C', 'import', 'P' || g, 'N^' || g, 'N^' || g, 'CT', $2, now()
               FROM generate_series(1, 6000) g""", world.tag, world.station)
        keys: list[bytes | str] = ["PatientID", f"(0040,0100)[0].ScheduledStationAETitle={world.station}"]
        code, output = await findscu(impatient.port, keys, tmp_path, verbose=True, extract=False)
        assert code == 0, output[-2000:]
        assert "Received Final Find Response (Success)" in output
        assert "abort" not in output.lower(), output[-2000:]
    finally:
        await asyncio.to_thread(impatient.stop)


async def test_cancel_stops_the_stream_promptly(pool, world: World, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """C-CANCEL after the first response ends a 40,000-match stream with FE00, and the SCP carries on.

    DCMTK's findscu is the modality here: pynetdicom's own SCU cannot send its C-CANCEL while its
    reader thread is flooded with incoming responses, so it would measure the client, not us.
    """
    async with busy_station(pool, world, "C", 40000) as roomy:
        prepare(tmp_path)
        keys = with_value(["PatientID", "(0040,0100)[0].ScheduledStationAETitle"],
                          ScheduledStationAETitle=world.station)
        args = [FINDSCU, "-W", "-v", "--cancel", "1", "-aet", "CT_MODALITY", "-aec", "WORKLIST"]
        for key in keys:
            args += ["-k", key]
        proc = await asyncio.create_subprocess_exec(*args, "127.0.0.1", str(roomy.port),
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        stdout, _ = await asyncio.wait_for(proc.communicate(), 60)
        output = stdout.decode("utf-8", "replace")
        assert proc.returncode == 0, output
        assert "Sending Cancel Request" in output, output
        assert "Received Final Find Response (Cancel" in output, output[-2000:]  # status FE00
        received = output.count("(Pending)")
        # Honoured mid-stream (under a second here; how soon in responses depends on the machine).
        assert received < 40000, f"{received} pending responses: the stream ran to its end"
        # The SCP carries on: the next modality query is answered.
        code, again = await findscu(roomy.port, with_value(["PatientID", "(0040,0100)[0].ScheduledStationAETitle"],
                                                           ScheduledStationAETitle=world.station, PatientID="P7"),
                                    tmp_path / "again")
        assert code == 0 and len(replies(tmp_path / "again")) == 1, again
