"""A pynetdicom SCU for the tests, run in a worker thread so the SCP's loop keeps serving."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    PatientRootQueryRetrieveInformationModelFind,
    Verification,
)

Response = tuple[int, Dataset | None, Dataset | None]  # status code, status dataset, identifier


def _ae(title: str = "MODALITY1", max_pdu: int = 16382, syntax: str | None = None) -> AE:
    ae = AE(ae_title=title)
    ae.maximum_pdu_size = max_pdu
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    for cx in (ModalityWorklistInformationFind, ModalityPerformedProcedureStep, Verification,
               PatientRootQueryRetrieveInformationModelFind):
        if syntax is None:
            ae.add_requested_context(cx)
        else:
            ae.add_requested_context(cx, [syntax])
    return ae


def find_sync(port: int, *queries: Dataset, called: str = "WORKLIST", calling: str = "MODALITY1",
              cancel_after: int | None = None, max_pdu: int = 16382,
              syntax: str | None = None, pause: float = 0.0, linger: float = 0.0) -> list[list[Response]]:
    """Each query's responses, all on one association (it must stay up between queries)."""
    assoc = _ae(calling, max_pdu, syntax).associate("127.0.0.1", port, ae_title=called)
    assert assoc.is_established, "association refused"
    out: list[list[Response]] = []
    try:
        for query in queries:
            responses: list[Response] = []
            for status, identifier in assoc.send_c_find(query, ModalityWorklistInformationFind, msg_id=7):
                assert status is not None, "no response (association aborted or timed out)"
                responses.append((int(status.Status), status, identifier))
                if pause:
                    time.sleep(pause)  # a slow modality: reads its responses one by one
                if cancel_after is not None and len(responses) == cancel_after:
                    cx = next(c for c in assoc.accepted_contexts
                              if c.abstract_syntax == ModalityWorklistInformationFind)
                    assoc.send_c_cancel(7, cx.context_id)
            out.append(responses)
        time.sleep(linger)  # an abort sent right after the last response would arrive meanwhile
        assert assoc.is_established, "the SCP dropped the association"
    finally:
        assoc.release()
    return out


async def find(port: int, *queries: Dataset, **kwargs: Any) -> list[list[Response]]:
    return await asyncio.to_thread(find_sync, port, *queries, **kwargs)


def _with_assoc(port: int, fn: Callable[[Any], Any], called: str = "WORKLIST") -> Any:
    assoc = _ae().associate("127.0.0.1", port, ae_title=called)
    assert assoc.is_established
    try:
        return fn(assoc)
    finally:
        assoc.release()


async def n_create(port: int, uid: str | None, attrs: Dataset) -> tuple[int, Dataset | None]:
    def run(assoc: Any) -> tuple[int, Dataset | None]:
        status, _ = assoc.send_n_create(attrs, ModalityPerformedProcedureStep, uid)
        return int(status.Status), status
    return await asyncio.to_thread(_with_assoc, port, run)


async def n_set(port: int, uid: str, mods: Dataset) -> tuple[int, Dataset | None]:
    def run(assoc: Any) -> tuple[int, Dataset | None]:
        status, _ = assoc.send_n_set(mods, ModalityPerformedProcedureStep, uid)
        return int(status.Status), status
    return await asyncio.to_thread(_with_assoc, port, run)


def mwl_query(*, charset: str | None = None, station: str = "", date: str = "", time: str = "", **top: Any) -> Dataset:
    """An IHE SWF style query: the usual return keys, with the given matching values."""
    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.PatientName = top.pop("PatientName", "")
    ds.PatientID = top.pop("PatientID", "")
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.AccessionNumber = top.pop("AccessionNumber", "")
    ds.RequestedProcedureID = ""
    ds.RequestedProcedureDescription = ""
    ds.StudyInstanceUID = ""
    ds.ReferringPhysicianName = ""
    ds.RequestedProcedurePriority = ""
    ds.MedicalAlerts = ""
    sps = Dataset()
    sps.ScheduledStationAETitle = station
    sps.ScheduledProcedureStepStartDate = date
    sps.ScheduledProcedureStepStartTime = time
    sps.Modality = top.pop("Modality", "")
    sps.ScheduledPerformingPhysicianName = ""
    sps.ScheduledProcedureStepDescription = ""
    sps.ScheduledProcedureStepID = ""
    sps.ScheduledStationName = ""
    sps.ScheduledProcedureStepLocation = ""
    sps.ScheduledProcedureStepStatus = ""
    sps.ScheduledProtocolCodeSequence = []
    ds.ScheduledProcedureStepSequence = [sps]
    for k, v in top.items():
        setattr(ds, k, v)
    return ds
