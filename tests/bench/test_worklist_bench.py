"""Worklist C-FIND: ours against DCMTK's wlmscpfs, the same items and the same findscu queries.

The same generated items (mixed Chinese/Latin names, 20 stations, 30 days) are loaded into our
database and, as .wl files, into a `wlmscpfs` data folder. DCMTK's `findscu` (/usr/bin/findscu)
then asks both, in one run: (a) one station + today, (b) one PatientID, (c) universal.
Printed: medians per query and server, the ratio ours/wlmscpfs, and whether both returned the same
matches (by accession number). Two clocks for each findscu run:
- end to end: from starting the findscu process to its exit. findscu's own start-up (it loads
  the DICOM data dictionary before it connects: 20-60 ms here, more on a loaded machine) is in it,
  the same for both servers;
- on the wire: from findscu's "Requesting Association" log line (timestamped to the microsecond
  by a log4cplus config, written just before it connects) to its exit after the A-RELEASE-RP:
  the query as the modality sees it, without the process start-up. findscu then logs one short
  line per response (not the dataset: -sr), as it does for both servers.
The difference of the two is printed as findscu's start-up. (a) and (b) are also timed per query
on one open association (findscu --repeat, minus a single run). Then ours alone at 100,000 items:
p50/p95 of (a) and (b) end to end and on the wire, per query on one association, and from a
pynetdicom SCU in its own process on one association.

Targets (issue 5): at 10,000 items (a) and (b) >= 10x faster than wlmscpfs (ratio <= 0.1), (c) no
slower (ratio <= 1); at 100,000 items p95 <= 50 ms for (a) and (b).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pydicom
import pytest
from imaging_testing import free_port, service_pool
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom.sop_class import ModalityWorklistInformationFind
from worklist.adapters.dicom.scp import WorklistSCP
from worklist.app import SERVICE
from worklist.domain.steps import StepData
from worklist.settings import Settings

from .conftest import percentile

FINDSCU = "/usr/bin/findscu"
WLMSCPFS = "/usr/bin/wlmscpfs"
SMALL, LARGE = 10_000, 100_000
STATIONS = [f"STATION{i:02d}" for i in range(1, 21)]
MODALITIES = ["CT", "MR", "DX", "US", "MG"]
SURNAMES = [("张", "ZHANG"), ("王", "WANG"), ("李", "LI"), ("赵", "ZHAO"), ("陈", "CHEN"), ("刘", "LIU"),
            ("杨", "YANG"), ("黄", "HUANG"), ("周", "ZHOU"), ("吴", "WU")]
GIVEN = [("伟", "WEI"), ("芳", "FANG"), ("娜", "NA"), ("敏", "MIN"), ("静", "JING"), ("磊", "LEI"),
         ("洋", "YANG"), ("勇", "YONG"), ("艳", "YAN"), ("杰", "JIE"), ("三丰", "SANFENG")]
LATIN = ["SMITH^JOHN", "MUELLER^ANNA", "GARCIA^LUIS", "TANAKA^YUKI", "KIM^MINJI"]
KEYS = ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyInstanceUID",
        "RequestedProcedureID", "RequestedProcedureDescription", "ReferringPhysicianName",
        "(0040,0100)[0].ScheduledStationAETitle", "(0040,0100)[0].ScheduledProcedureStepStartDate",
        "(0040,0100)[0].ScheduledProcedureStepStartTime", "(0040,0100)[0].Modality",
        "(0040,0100)[0].ScheduledPerformingPhysicianName", "(0040,0100)[0].ScheduledProcedureStepDescription",
        "(0040,0100)[0].ScheduledProcedureStepID", "(0040,0100)[0].ScheduledProcedureStepLocation"]


def generate(n: int, start: int = 0, *, today: datetime) -> list[StepData]:
    rng = random.Random(5 + start)
    first_day = today.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=15)
    items = []
    for i in range(start, start + n):
        kind = rng.random()
        if kind < 0.5:
            (s, sp), (g, gp) = rng.choice(SURNAMES), rng.choice(GIVEN)
            name = f"{sp}^{gp}={s}^{g}"
        elif kind < 0.75:
            (s, _), (g, _) = rng.choice(SURNAMES), rng.choice(GIVEN)
            name = f"{s}{g}"
        else:
            name = rng.choice(LATIN)
        station = STATIONS[i % len(STATIONS)]
        at = first_day + timedelta(days=rng.randrange(30), minutes=8 * 60 + rng.randrange(600))
        items.append(StepData(
            accession_number=f"ACC{i:08d}", protocol_code="EXAM", patient_id=f"PID{i // 2:07d}", patient_name=name,
            sps_id=f"SPS{i:08d}", requested_procedure_id=f"RP{i:08d}", study_instance_uid=f"1.2.826.0.1.99.{i}",
            modality=MODALITIES[STATIONS.index(station) % len(MODALITIES)], station_ae_title=station,
            station_name=station[-4:], location=f"ROOM{station[-2:]}", start_at=at.replace(second=0),
            description="胸部CT平扫" if i % 3 else "Chest PA", requested_procedure_description="检查",
            sex="MF"[i % 2], source="import",
        ))
    return items


async def load_ours(conn: asyncpg.Connection, items: list[StepData]) -> None:
    records = [item.columns() for item in items]
    columns = list(records[0])
    await conn.copy_records_to_table("scheduled_procedure_steps", columns=columns,
                                     records=[tuple(r[c] for c in columns) for r in records])
    await conn.execute("ANALYZE scheduled_procedure_steps")


def write_wl_files(folder: Path, items: list[StepData]) -> None:
    """The same items as DCMTK worklist files (<folder>/WORKLIST/*.wl, with the lockfile it needs)."""
    target = folder / "WORKLIST"
    target.mkdir(parents=True)
    (target / "lockfile").touch()
    for item in items:
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName = item.patient_name
        ds.PatientID = item.patient_id
        ds.PatientBirthDate = ""
        ds.PatientSex = item.sex
        ds.AccessionNumber = item.accession_number
        ds.StudyInstanceUID = item.study_instance_uid
        ds.RequestedProcedureID = item.requested_procedure_id
        ds.RequestedProcedureDescription = item.requested_procedure_description
        ds.RequestedProcedurePriority = "ROUTINE"
        ds.ReferringPhysicianName = ""
        sps = Dataset()
        sps.ScheduledStationAETitle = item.station_ae_title
        assert item.start_at is not None
        sps.ScheduledProcedureStepStartDate = item.start_at.strftime("%Y%m%d")
        sps.ScheduledProcedureStepStartTime = item.start_at.strftime("%H%M%S")
        sps.Modality = item.modality
        sps.ScheduledPerformingPhysicianName = ""
        sps.ScheduledProcedureStepDescription = item.description
        sps.ScheduledProcedureStepID = item.sps_id
        sps.ScheduledStationName = item.station_name
        sps.ScheduledProcedureStepLocation = item.location
        ds.ScheduledProcedureStepSequence = [sps]
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ModalityWorklistInformationFind
        meta.MediaStorageSOPInstanceUID = item.study_instance_uid
        meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.file_meta = meta
        ds.preamble = b"\0" * 128
        pydicom.dcmwrite(target / f"{item.accession_number}.wl", ds, enforce_file_format=True)


# findscu's log reduced to one line, "Requesting Association" (logged just before it connects),
# stamped in UTC to the microsecond: the start of the query on the wire.
WIRE_LOG_CONFIG = """\
log4cplus.rootLogger = INFO, out
log4cplus.appender.out = log4cplus::ConsoleAppender
log4cplus.appender.out.layout = log4cplus::PatternLayout
log4cplus.appender.out.layout.ConversionPattern = %d{%Y-%m-%d %H:%M:%S.%Q} %m%n
log4cplus.appender.out.filters.1 = log4cplus::spi::StringMatchFilter
log4cplus.appender.out.filters.1.StringToMatch = Requesting Association
log4cplus.appender.out.filters.1.AcceptOnMatch = true
log4cplus.appender.out.filters.2 = log4cplus::spi::DenyAllFilter
"""
_REQUESTING = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{3})\.(\d{3}) Requesting Association", re.M)


def wire_log_config() -> Path:
    path = Path(tempfile.gettempdir()) / "worklist-bench-findscu-log.cfg"
    path.write_text(WIRE_LOG_CONFIG)
    return path


async def findscu(port: int, keys: list[str], out: Path | None = None, repeat: int = 1,
                  wire: bool = False) -> tuple[float, float | None]:
    """Seconds from process start to exit, and (wire=True) from "Requesting Association" to exit."""
    # -q: findscu otherwise prints every response it receives, a client cost that is not the server's
    # (with wire=True, -sr keeps the responses out of the log the same way)
    quiet = ["-lc", str(wire_log_config()), "-sr"] if wire else ["-q"]
    args = [FINDSCU, *quiet, "-W", "-aet", "BENCH", "-aec", "WORKLIST", "--repeat", str(repeat)]
    if out is not None:
        args += ["-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    args += ["127.0.0.1", str(port)]
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    log, err = await proc.communicate()
    ended, elapsed = time.time(), time.perf_counter() - started
    assert proc.returncode == 0, err.decode(errors="replace")
    if not wire:
        return elapsed, None
    found = _REQUESTING.search(log.decode(errors="replace"))
    assert found, f"no 'Requesting Association' in findscu's log: {log[:300]!r}"
    day_time, ms, us = found.groups()
    requested = datetime.strptime(day_time, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
    return elapsed, ended - (requested + int(ms) / 1e3 + int(us) / 1e6)


def matched_accessions(out: Path) -> set[str]:
    return {str(pydicom.dcmread(p, specific_tags=["AccessionNumber"]).AccessionNumber) for p in out.glob("rsp*.dcm")}


def keys_for(query: str, today: datetime) -> list[str]:
    values = {
        "a": {"(0040,0100)[0].ScheduledStationAETitle": "STATION07",
              "(0040,0100)[0].ScheduledProcedureStepStartDate": today.strftime("%Y%m%d")},
        "b": {"PatientID": "PID0002345"},
        "c": {},
    }[query]
    return [f"{k}={values[k]}" if k in values else k for k in KEYS]


@pytest.fixture(scope="module")
async def pool(test_env: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    for tool in (FINDSCU, WLMSCPFS):
        if not Path(tool).exists():
            pytest.fail(f"{tool} is missing: install Debian's dcmtk (make system-deps)")
    async with service_pool(SERVICE, test_env["DATABASE_URL"], max_size=4) as p:
        async with p.acquire() as conn:
            await conn.execute("TRUNCATE scheduled_procedure_steps")
        yield p


async def _start_ours(pool: asyncpg.Pool) -> WorklistSCP:
    settings = Settings(worklist_port=free_port(), worklist_host="127.0.0.1", worklist_max_results=LARGE + 1)
    scp = WorklistSCP(pool, settings, asyncio.get_running_loop())
    await asyncio.to_thread(scp.start)
    return scp


async def _start_wlmscpfs(folder: Path) -> tuple[asyncio.subprocess.Process, int]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(WLMSCPFS, "-csk", "-dfp", str(folder), str(port),
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    for _ in range(100):  # until it accepts connections
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return proc, port
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("wlmscpfs did not start")


async def test_worklist_vs_wlmscpfs(bench, pool: asyncpg.Pool) -> None:  # type: ignore[no-untyped-def]
    today = datetime.now(Settings().tz).replace(tzinfo=None)
    items = generate(SMALL, today=today)
    async with pool.acquire() as conn:
        await load_ours(conn, items)
    folder = Path(tempfile.mkdtemp(prefix="wlm-bench-"))
    try:
        await asyncio.to_thread(write_wl_files, folder, items)
        ours = await _start_ours(pool)
        peer, peer_port = await _start_wlmscpfs(folder)
        try:
            reps = {"a": 15, "b": 15, "c": 3}
            names = {"a": "(a) station + today", "b": "(b) one PatientID", "c": "(c) universal"}
            targets = {"a": "<= 0.1", "b": "<= 0.1", "c": "<= 1"}
            startup: list[float] = []  # findscu's start-up: end to end less on the wire
            for q in ("a", "b", "c"):
                keys = keys_for(q, today)
                # correctness first: both answer, written to disk, compared by accession number
                outs = {}
                for label, port in (("ours", ours.port), ("wlmscpfs", peer_port)):
                    out = folder / f"rsp-{q}-{label}"
                    out.mkdir()
                    await findscu(port, keys, out)
                    outs[label] = await asyncio.to_thread(matched_accessions, out)
                    await asyncio.to_thread(shutil.rmtree, out)
                same = outs["ours"] == outs["wlmscpfs"]
                times: dict[str, list[float]] = {"ours": [], "wlmscpfs": []}
                wire: dict[str, list[float]] = {"ours": [], "wlmscpfs": []}
                for _ in range(reps[q]):  # interleaved, so load on the machine hits both alike
                    for label, port in (("ours", ours.port), ("wlmscpfs", peer_port)):
                        times[label].append((await findscu(port, keys))[0])
                        elapsed, on_wire = await findscu(port, keys, wire=True)
                        assert on_wire is not None
                        wire[label].append(on_wire)
                        startup.append(elapsed - on_wire)
                bench.compare(f"{names[q]} @10k median", statistics.median(times["ours"]) * 1000,
                              statistics.median(times["wlmscpfs"]) * 1000, "ms", peer_name="wlmscpfs",
                              target=targets[q])
                bench.compare(f"{names[q]} @10k on the wire median", statistics.median(wire["ours"]) * 1000,
                              statistics.median(wire["wlmscpfs"]) * 1000, "ms", peer_name="wlmscpfs",
                              target=targets[q])
                bench.figure(f"{names[q]} @10k same matches", 1.0 if same else 0.0, "bool",
                             note=f"ours {len(outs['ours'])} / wlmscpfs {len(outs['wlmscpfs'])} matches"
                             + ("" if same else f"; differ: {sorted(outs['ours'] ^ outs['wlmscpfs'])[:5]}"))
                if q in ("a", "b"):  # the servers alone: findscu --repeat on one association
                    mine = [await per_query_on_one_association(ours.port, keys, 20) for _ in range(3)]
                    theirs = [await per_query_on_one_association(peer_port, keys, 5) for _ in range(3)]
                    bench.compare(f"{names[q]} @10k per query on one association (findscu --repeat)",
                                  statistics.median(mine) * 1000, statistics.median(theirs) * 1000, "ms",
                                  peer_name="wlmscpfs", target=targets[q])
            bench.figure("findscu start-up (process start to Requesting Association) median",
                         statistics.median(startup) * 1000, "ms", note=f"p95 {percentile(startup, 95) * 1000:.1f} ms")
        finally:
            peer.terminate()
            await peer.wait()
            await asyncio.to_thread(ours.stop)
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)


async def per_query_on_one_association(port: int, keys: list[str], n: int) -> float:
    """Seconds per query when findscu repeats it n more times on its association (--repeat):
    the difference to a single run removes findscu's start-up and the association set-up."""
    once = (await findscu(port, keys))[0]
    many = (await findscu(port, keys, repeat=n + 1))[0]
    return max(0.0, (many - once) / n)


async def one_association(port: int, keys: list[str], reps: int) -> list[float]:
    """Seconds per C-FIND over one open association, from a client in its own process."""
    client = Path(__file__).with_name("worklist_client.py")
    proc = await asyncio.create_subprocess_exec(sys.executable, str(client), str(port), str(reps), json.dumps(keys),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode(errors="replace")
    return [float(x) for x in json.loads(out)]


async def test_worklist_at_100k(bench, pool: asyncpg.Pool) -> None:  # type: ignore[no-untyped-def]
    today = datetime.now(Settings().tz).replace(tzinfo=None)
    async with pool.acquire() as conn:
        have = await conn.fetchval("SELECT count(*) FROM scheduled_procedure_steps")
        await load_ours(conn, generate(LARGE - have, start=have, today=today))
        assert await conn.fetchval("SELECT count(*) FROM scheduled_procedure_steps") == LARGE
    ours = await _start_ours(pool)
    try:
        for q, label in (("a", "(a) station + today"), ("b", "(b) one PatientID")):
            ends, wires = [], []
            for _ in range(40):
                ends.append((await findscu(ours.port, keys_for(q, today)))[0] * 1000)
                on_wire = (await findscu(ours.port, keys_for(q, today), wire=True))[1]
                assert on_wire is not None
                wires.append(on_wire * 1000)
            bench.figure(f"{label} @100k findscu p50", statistics.median(ends), "ms")
            bench.figure(f"{label} @100k findscu p95", percentile(ends, 95), "ms", target="<= 50")
            bench.figure(f"{label} @100k on the wire p50", statistics.median(wires), "ms")
            bench.figure(f"{label} @100k on the wire p95", percentile(wires, 95), "ms", target="<= 50")
        for q, label in (("a", "(a) station + today"), ("b", "(b) one PatientID")):
            mean = [await per_query_on_one_association(ours.port, keys_for(q, today), 40) for _ in range(3)]
            bench.figure(f"{label} @100k per query on one association (findscu --repeat)",
                         statistics.median(mean) * 1000, "ms", target="<= 50")
            # a pynetdicom SCU in its own process: per-query samples for p50/p95 (its own decoding
            # of each response, ~0.5 ms in Python, is part of these figures)
            ms = [s * 1000 for s in await one_association(ours.port, keys_for(q, today), 100)]
            bench.figure(f"{label} @100k pynetdicom SCU p50", statistics.median(ms), "ms")
            bench.figure(f"{label} @100k pynetdicom SCU p95", percentile(ms, 95), "ms", target="<= 50")
    finally:
        await asyncio.to_thread(ours.stop)
