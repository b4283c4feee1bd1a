"""MWL C-FIND over real DICOM with a pynetdicom SCU: matching, charsets, return keys, statuses."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from imaging_testing import eventually
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    ModalityWorklistInformationFind,
    PatientRootQueryRetrieveInformationModelFind,
    Verification,
)
from worklist.adapters.dicom.scp import WorklistSCP

from .conftest import World, busy_station, now_local, scp_settings
from .scu import find, mwl_query


def today() -> str:
    return now_local().strftime("%Y%m%d")


async def test_modality_sees_its_items_for_today_with_every_return_key(scp: WorklistSCP, world: World) -> None:
    await world.step(1, patient_name="ZHANG^SAN=张^三")
    await world.step(2, patient_name="李四", performing_physician="WANG^WU=王^五")
    await world.step(3, start_at=now_local() + timedelta(days=1))  # tomorrow: not today's list
    [responses] = await find(scp.port, mwl_query(station=world.station, date=today()))
    pending = [r for r in responses if r[0] == 0xFF00]
    assert len(pending) == 2 and responses[-1][0] == 0x0000
    replies = sorted((r[2] for r in pending), key=lambda d: d.AccessionNumber)
    first = replies[0]
    assert first.SpecificCharacterSet == "ISO_IR 192"  # the query declared none: UTF-8 carries Chinese
    assert str(first.PatientName) == "ZHANG^SAN=张^三"
    assert first.PatientName.ideographic == "张^三"
    assert first.AccessionNumber == world.id("A1") and first.RequestedProcedureID == world.id("R1")
    assert first.StudyInstanceUID.startswith("2.25.")
    sps = first.ScheduledProcedureStepSequence[0]
    assert sps.ScheduledStationAETitle == world.station and sps.Modality == "CT"
    assert sps.ScheduledProcedureStepStartDate == today() and sps.ScheduledProcedureStepStartTime == "090100"
    assert sps.ScheduledProcedureStepDescription == "胸部CT平扫" and sps.ScheduledProcedureStepStatus == "SCHEDULED"
    assert sps.ScheduledProtocolCodeSequence[0].CodeValue == "CT-CHEST"
    # every requested key is in every reply, empty when we hold nothing
    for key in mwl_query():
        assert key.tag in first, key.keyword
    for key in mwl_query().ScheduledProcedureStepSequence[0]:
        assert key.tag in sps, key.keyword
    assert first.ReferringPhysicianName == "" and first.PatientBirthDate == ""
    assert str(replies[1].ScheduledProcedureStepSequence[0].ScheduledPerformingPhysicianName) == "WANG^WU=王^五"


async def test_chinese_name_query_in_gb18030_and_utf8_finds_the_same_patient(scp: WorklistSCP, world: World) -> None:
    await world.step(1, patient_name="ZHANG^SAN=张^三")
    await world.step(2, patient_name="张三丰")
    await world.step(3, patient_name="WANG^WU=王^五")
    for charset in ("GB18030", "ISO_IR 192"):
        [responses] = await find(scp.port, mwl_query(charset=charset, station=world.station, PatientName="张*"))
        pending = [r[2] for r in responses if r[0] == 0xFF00]
        assert sorted(str(d.PatientName) for d in pending) == ["ZHANG^SAN=张^三", "张三丰"], charset
        assert {d.SpecificCharacterSet for d in pending} == {charset}  # the modality's own set comes back
        assert responses[-1][0] == 0x0000


async def test_gb18030_reply_bytes_are_gb18030(scp: WorklistSCP, world: World) -> None:
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    await world.step(1, patient_name="张三")
    [responses] = await find(scp.port, mwl_query(charset="GB18030", station=world.station, PatientName="张?"))
    reply = responses[0][2]
    assert reply is not None
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, reply)
    assert "张三".encode("gb18030") in buffer.getvalue()


async def test_latin1_modality_gets_utf8_rather_than_lost_characters(scp: WorklistSCP, world: World) -> None:
    await world.step(1, patient_name="ZHANG^SAN=张^三")
    [responses] = await find(scp.port, mwl_query(charset="ISO_IR 100", station=world.station))
    reply = responses[0][2]
    assert reply.SpecificCharacterSet == "ISO_IR 192" and reply.PatientName.ideographic == "张^三"


async def test_matching_on_identifiers_modality_and_wildcards(scp: WorklistSCP, world: World) -> None:
    await world.step(1, modality="CT")
    await world.step(2, modality="MR")
    q = mwl_query(station=world.station[:4] + "*" + world.station[-2:], PatientID=world.id("P?"), Modality="M?")
    [responses] = await find(scp.port, q)
    pending = [r[2] for r in responses if r[0] == 0xFF00]
    assert [d.PatientID for d in pending] == [world.id("P2")]
    [by_accession] = await find(scp.port, mwl_query(AccessionNumber=world.id("A1")))
    assert [r[2].AccessionNumber for r in by_accession if r[0] == 0xFF00] == [world.id("A1")]


async def test_replies_larger_than_the_peers_pdu_are_fragmented(scp: WorklistSCP, world: World) -> None:
    long_text = "长" * 60
    await world.step(1, description=long_text, requested_procedure_description=long_text, reason=long_text,
                     medical_alerts=long_text, history=long_text)
    await world.step(2, description=long_text)
    query = mwl_query(station=world.station, ReasonForTheRequestedProcedure="", AdditionalPatientHistory="")
    [responses] = await find(scp.port, query, max_pdu=512)
    pending = sorted((r[2] for r in responses if r[0] == 0xFF00), key=lambda d: d.AccessionNumber)
    assert len(pending) == 2 and responses[-1][0] == 0x0000
    assert pending[0].ReasonForTheRequestedProcedure == long_text and pending[0].MedicalAlerts == long_text
    assert pending[1].ScheduledProcedureStepSequence[0].ScheduledProcedureStepDescription == long_text


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian])
async def test_every_little_endian_transfer_syntax(scp: WorklistSCP, world: World, syntax: str) -> None:
    await world.step(1, patient_name="ZHANG^SAN=张^三")
    [responses] = await find(scp.port, mwl_query(charset="GB18030", station=world.station), syntax=syntax)
    assert [r[0] for r in responses] == [0xFF00, 0x0000]
    reply = responses[0][2]
    assert str(reply.PatientName) == "ZHANG^SAN=张^三" and reply.SpecificCharacterSet == "GB18030"
    assert reply.ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence[0].CodeValue == "CT-CHEST"


async def test_combined_date_time_range_over_dicom(scp: WorklistSCP, world: World) -> None:
    day = now_local().replace(hour=0, minute=0, second=0) + timedelta(days=40)
    await world.step(1, start_at=day.replace(hour=23, minute=30))
    await world.step(2, start_at=day + timedelta(days=1, minutes=30))
    await world.step(3, start_at=day + timedelta(days=1, hours=3))
    d1, d2 = day.strftime("%Y%m%d"), (day + timedelta(days=1)).strftime("%Y%m%d")
    [responses] = await find(scp.port, mwl_query(station=world.station, date=f"{d1}-{d2}", time="2300-0100"))
    assert len([r for r in responses if r[0] == 0xFF00]) == 2


async def test_unsupported_keys_get_the_warning_and_come_back_empty(scp: WorklistSCP, world: World) -> None:
    await world.step(1)
    q = mwl_query(station=world.station)
    q.add_new(0x00091010, "LO", "")  # a private key we cannot know
    q.PatientWeight = None  # known to IHE, not held: returned empty without a warning on its own
    [responses] = await find(scp.port, q)
    assert responses[0][0] == 0xFF01  # Pending: optional keys not supported
    reply = responses[0][2]
    assert 0x00091010 in reply and "PatientWeight" in reply
    assert responses[-1][0] == 0x0000
    q2 = mwl_query(station=world.station)
    q2.PatientWeight = None
    [plain] = await find(scp.port, q2)
    assert plain[0][0] == 0xFF00


async def test_malformed_identifier_fails_cleanly_and_the_association_stays(scp: WorklistSCP, world: World) -> None:
    await world.step(1)
    bad_date = mwl_query(station=world.station, date="20241345")
    two_items = mwl_query(station=world.station)
    two_items.ScheduledProcedureStepSequence.append(Dataset())
    bad_charset = mwl_query(station=world.station)
    bad_charset.SpecificCharacterSet = "KLINGON"
    good = mwl_query(station=world.station)
    results = await find(scp.port, bad_date, two_items, bad_charset, good)
    for responses in results[:3]:
        assert len(responses) == 1 and responses[0][0] == 0xA900, responses
        assert responses[0][1].ErrorComment
    assert [r[0] for r in results[3]] == [0xFF00, 0x0000]  # same association, still answering


async def test_maximum_results_ends_with_out_of_resources(pool, world: World) -> None:  # type: ignore[no-untyped-def]
    small = WorklistSCP(pool, scp_settings(worklist_max_results=2), asyncio.get_running_loop())
    await asyncio.to_thread(small.start)
    try:
        for n in range(1, 4):
            await world.step(n)
        [responses] = await find(small.port, mwl_query(station=world.station))
        assert [r[0] for r in responses] == [0xFF00, 0xFF00, 0xA700]
        assert "narrow" in responses[-1][1].ErrorComment
        for n in (1, 2):  # exactly the limit is no failure
            await world.conn.execute("DELETE FROM scheduled_procedure_steps WHERE accession_number = $1",
                                     world.id(f"A{n}"))
        [responses] = await find(small.port, mwl_query(station=world.station))
        assert [r[0] for r in responses] == [0xFF00, 0x0000]
    finally:
        await asyncio.to_thread(small.stop)


async def test_other_sop_classes_are_rejected_at_negotiation_not_aborted(scp: WorklistSCP) -> None:
    def run() -> tuple[bool, bool, int]:
        ae = AE(ae_title="MODALITY1")
        ae.add_requested_context(PatientRootQueryRetrieveInformationModelFind)
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", scp.port, ae_title="WORKLIST")
        try:
            accepted = {cx.abstract_syntax for cx in assoc.accepted_contexts}
            echo = assoc.send_c_echo()
            return (PatientRootQueryRetrieveInformationModelFind in accepted, assoc.is_established,
                    int(echo.Status))
        finally:
            assoc.release()

    qr_accepted, established, echo = await asyncio.to_thread(run)
    assert not qr_accepted and established and echo == 0x0000


async def test_wrong_called_ae_title_is_rejected(scp: WorklistSCP) -> None:
    def run() -> tuple[bool, bool]:
        ae = AE(ae_title="MODALITY1")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", scp.port, ae_title="NOT_US")
        return assoc.is_rejected, assoc.is_aborted

    rejected, aborted = await asyncio.to_thread(run)
    assert rejected and not aborted


async def test_batched_responses_match_pynetdicoms_whatever_the_peers_pdu(scp: WorklistSCP, world: World) -> None:
    """Pendings are written as P-DATA bytes in batches (wire.py); deflated ones still go through
    pynetdicom's own encoding. The same items must come back alike either way, even through a
    peer maximum PDU so small that every command and data set is cut into many fragments."""
    for i in range(30):  # more than the first batch, with Chinese and Latin names
        await world.step(i, patient_name="ZHANG^SAN=张^三" if i % 2 else f"DOE^JOHN{i}")
    query = mwl_query(charset="ISO_IR 192", station=world.station)

    def replies(responses: list) -> list[Dataset]:  # type: ignore[type-arg]
        assert [r[0] for r in responses] == [0xFF00] * 30 + [0x0000]
        return sorted((r[2] for r in responses[:-1]), key=lambda d: d.AccessionNumber)

    [pynetdicoms] = await find(scp.port, query, syntax=DeflatedExplicitVRLittleEndian)
    for max_pdu, syntax in ((0, ImplicitVRLittleEndian), (64, ImplicitVRLittleEndian), (64, ExplicitVRLittleEndian),
                            (16382, ExplicitVRLittleEndian)):
        [ours] = await find(scp.port, query, max_pdu=max_pdu, syntax=syntax)
        assert replies(ours) == replies(pynetdicoms), (max_pdu, syntax)


async def test_a_modality_that_drops_the_connection_mid_stream_stops_it(pool, world: World) -> None:  # type: ignore[no-untyped-def]
    """Pendings go out in batches straight to the socket: a peer gone mid-stream (its socket
    closed, no release) must end the stream there, and the SCP must answer the next modality."""
    async with busy_station(pool, world, "D", 20000) as roomy:

        def drop_after_first_response() -> int:
            assoc = AE(ae_title="MODALITY1")
            assoc.add_requested_context(ModalityWorklistInformationFind)
            association = assoc.associate("127.0.0.1", roomy.port, ae_title="WORKLIST")
            assert association.is_established
            responses = association.send_c_find(mwl_query(station=world.station), ModalityWorklistInformationFind)
            status, _ = next(responses)
            association.dul.socket.socket.close()  # gone: no A-RELEASE, no A-ABORT
            association.kill()
            return int(status.Status)

        assert await asyncio.to_thread(drop_after_first_response) == 0xFF00
        [responses] = await find(roomy.port, mwl_query(station=world.station, PatientID="P7"))
        assert [r[0] for r in responses] == [0xFF00, 0x0000]
        # the dropped query's reader stopped early: its audit row counts the rows it read
        row = await eventually(lambda: world.conn.fetchrow(
            """SELECT (detail->>'matches')::int AS read FROM audit.audit_log WHERE actor = 'dicom:MODALITY1'
               AND detail->'query'->>'station_ae_title' = $1 AND NOT detail->'query' ? 'patient_id'""",
            world.station), "the dropped query's audit row", within=10)
        assert row["read"] is not None and row["read"] < 20000, row
