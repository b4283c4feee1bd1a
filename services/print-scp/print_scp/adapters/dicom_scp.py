"""The DICOM print SCP (pynetdicom): thin handlers over `PrintAssociation`, bridged to the event loop.

pynetdicom runs each association in its own thread, and every handler below runs in that thread.
Work that needs the database or the film store is handed to the asyncio loop with
`run_coroutine_threadsafe`; nothing here ever runs inside the event loop itself. An image box's
pixels are spooled as its N-SET arrives, in the background while the modality sends on
(spool_store.AssociationSpool); a print waits for those writes and for its manifest and films row,
so the modality is answered only once the job is durable.

The `DimseObserver` counts associations and responses on the service's /metrics and gives each
association a correlation id, bound in its thread: the job accepted on the loop carries it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

from imaging_common.dicom.access import PeerGate, dicom_server_context, start_tls_server
from imaging_common.dicom.fast_accept import use_fast_accept
from imaging_common.dicom.observe import DimseObserver
from imaging_common.peers import PeerRegistry
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.dimse_primitives import N_ACTION, N_DELETE, N_EVENT_REPORT, N_GET, N_SET
from pynetdicom.dsutils import decode, encode

from print_scp.adapters import spool_store
from print_scp.adapters.fast_dimse import make_fast_responses
from print_scp.adapters.fast_dul import make_fast
from print_scp.adapters.film_pipeline import FilmPipeline
from print_scp.adapters.memory_budget import MemoryBudget
from print_scp.adapters.spool_store import AssociationSpool
from print_scp.domain import statuses as st
from print_scp.domain.print_session import (
    ANNOTATION_BOX,
    COLOR_IMAGE_BOX,
    COLOR_META,
    FILM_BOX,
    FILM_SESSION,
    GRAYSCALE_IMAGE_BOX,
    GRAYSCALE_META,
    PRESENTATION_LUT,
    PRINT_CLASSES,
    PRINT_JOB,
    PRINTER,
    PRINTER_INSTANCE,
    PrintAssociation,
    classes_of_context,
    printer_attributes,
)
from print_scp.domain.statuses import PrintFailure
from print_scp.settings import Settings

log = logging.getLogger(__name__)
TRANSFER_SYNTAXES = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian]
# Contexts accepted: both meta SOP classes, and what scanners add beside them (Print Job, Basic
# Annotation Box, Presentation LUT, the Printer alone), so their associations are not refused.
ACCEPTED = [GRAYSCALE_META, COLOR_META, PRESENTATION_LUT, PRINT_JOB, ANNOTATION_BOX, PRINTER, FILM_SESSION,
            FILM_BOX, GRAYSCALE_IMAGE_BOX, COLOR_IMAGE_BOX]
PRINTER_EVENT_NORMAL = 1  # N-EVENT-REPORT Event Type ID of the Printer: NORMAL (PS3.4 H.4.6.1.1)
VERIFICATION = "1.2.840.10008.1.1"
ACCEPT_TIMEOUT = 120.0  # seconds the association thread waits for a job to become durable
SWEEP_EVERY = 3600.0  # seconds between sweeps of spool objects a crash left behind


def _status(code: int, comment: str | None = None, attributes: list[int] | None = None) -> Dataset:
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = st.error_comment(comment)
    if attributes:  # which attributes a 0x0105 is about (PS3.7 C.4.2), for the responses that carry the list
        ds.AttributeIdentifierList = attributes
    return ds


def _no_event_reports(event: evt.Event) -> tuple[Dataset, None]:
    """A modality's own N-EVENT-REPORT: the printer reports, it takes none (it went unanswered, and the
    modality waited out its DIMSE timeout and aborted)."""
    return _status(st.UNRECOGNIZED_OPERATION, "this printer sends N-EVENT-REPORTs, it does not take them"), None


def _declared(ds: Dataset) -> Dataset:
    """`ds` with Specific Character Set ISO_IR 192 (UTF-8) when a text value needs it: a Chinese session
    label echoed in a response would otherwise go out as "???" in the default repertoire."""
    if "SpecificCharacterSet" not in ds and any(
            isinstance(e.value, str) and not e.value.isascii() for e in ds if e.VR in _TEXT_VRS):
        ds.SpecificCharacterSet = "ISO_IR 192"
    return ds


_TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "PN", "UC"})
_LISTING = (N_SET, N_GET, N_ACTION)  # the responses with an Attribute Identifier List (pynetdicom 3.0)


def _req(event: evt.Event) -> Any:
    """The request primitive; pynetdicom types it as a union of every DIMSE primitive."""
    return event.request


def _materialize(ds: Dataset) -> Dataset:
    """Decode every element now, so a malformed value fails this request instead of a later one."""
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                _materialize(item)
        else:
            _ = elem.value
    return ds


class _ReportAfterPrint:
    """`dimse.send_msg` of one association: once a printed film session's N-DELETE response is queued, the
    printer's N-EVENT-REPORT follows it, where WS/T 597 Appendix A puts it (after the print and its
    deletes, before A-RELEASE): sent right after the N-ACTION response, it held up the modality's next
    request while it answered the report."""

    def __init__(self, scp: PrintScp, assoc: Any) -> None:
        self.scp, self.assoc, self.original = scp, assoc, assoc.dimse.send_msg

    def __call__(self, primitive: Any, context_id: int) -> None:
        self.original(primitive, context_id)
        if (isinstance(primitive, N_DELETE) and primitive.MessageIDBeingRespondedTo is not None
                and str(primitive.AffectedSOPClassUID or "") == FILM_SESSION):
            self.scp._send_printer_report(self.assoc, context_id)


class PrintScp:
    def __init__(self, *, settings: Settings, pipeline: FilmPipeline, loop: asyncio.AbstractEventLoop,
                 observer: DimseObserver | None = None, peers: PeerRegistry | None = None) -> None:
        self.settings, self.pipeline, self.loop = settings, pipeline, loop
        self.observer = observer
        # Known peers (issue 18): calling AE title + address (+ certificate), per IMAGING_PRINT_PEERS.
        self.gate = PeerGate(peers, mode=settings.peer_mode(settings.print_peers), port="print-scp")
        self._tls_server: Any = None
        self.budget = MemoryBudget(max_image=settings.print_max_image_bytes,
                                   max_association=settings.print_max_association_bytes,
                                   max_total=settings.print_max_memory_bytes, held=self._held_bytes)
        self._states: dict[int, PrintAssociation] = {}
        self._spools: dict[int, AssociationSpool] = {}
        self._sweeper: Any = None
        self._session_ids: dict[int, str] = {}
        self._pending_reports: set[int] = set()
        self._render_on_close: set[int] = set()
        self._lock = threading.Lock()
        self._server: Any = None
        self.calibrated_at = datetime.now(UTC)
        self.broken_sessions = 0
        self.message_id = 0x4000
        self.port = settings.print_port

    # ---- server ----------------------------------------------------------------------------

    def start(self) -> None:
        s = self.settings
        ae = AE(ae_title=s.print_ae_title)
        ae.maximum_pdu_size = s.print_max_pdu
        ae.dimse_timeout = s.print_dimse_timeout
        ae.network_timeout = s.print_network_timeout
        ae.acse_timeout = 30
        ae.require_called_aet = True
        ae.maximum_associations = 32
        for uid in ACCEPTED:
            ae.add_supported_context(uid, TRANSFER_SYNTAXES)
        ae.add_supported_context(VERIFICATION, TRANSFER_SYNTAXES)
        handlers: list[Any] = [
            (evt.EVT_CONN_OPEN, self._on_open), (evt.EVT_N_CREATE, self._guard(self._n_create)),
            (evt.EVT_N_SET, self._guard(self._n_set)), (evt.EVT_N_GET, self._guard(self._n_get)),
            (evt.EVT_N_ACTION, self._guard(self._n_action)),
            (evt.EVT_N_DELETE, self._guard(self._n_delete, status_only=True)),
            (evt.EVT_N_EVENT_REPORT, _no_event_reports),
            (evt.EVT_RELEASED, self._on_end),
            (evt.EVT_ABORTED, self._on_end),
            (evt.EVT_CONN_CLOSE, self._on_close),
        ]
        if self.observer is not None:
            handlers += self.observer.handlers()
        handlers += self.gate.handlers()
        self._server = ae.start_server((s.print_host, s.print_port), block=False, evt_handlers=handlers)
        use_fast_accept(self._server)
        self.port = int(self._server.server_address[1])  # the real one when IMAGING_PRINT_PORT=0
        log.info("print SCP %s listening on %s:%s (known peers: %s)", s.print_ae_title, s.print_host, self.port,
                 self.gate.mode)
        if s.print_tls_port is not None:
            context = dicom_server_context(s)
            self._tls_server = start_tls_server(ae, (s.print_host, s.print_tls_port), context, handlers,
                                                on_handshake_failure=self.gate.on_handshake_failure)
            use_fast_accept(self._tls_server)
            log.info("print SCP %s listening for DICOM TLS on %s:%s (client certificate %s)", s.print_ae_title,
                     s.print_host, self.tls_port,
                     "required" if context.verify_mode == ssl.CERT_REQUIRED else "not required")
        self._sweeper = asyncio.run_coroutine_threadsafe(self._sweep_forever(), self.loop)

    @property
    def tls_port(self) -> int | None:
        return int(self._tls_server.server_address[1]) if self._tls_server else self.settings.print_tls_port

    def stop(self) -> None:
        for server in (self._tls_server, self._server):
            if server is not None:
                server.shutdown()
        self._server = self._tls_server = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def _sweep_forever(self) -> None:
        """Spool objects that a crash left behind (written at an N-SET, never printed) are deleted in time."""
        while True:
            try:
                await spool_store.sweep(self.pipeline.store, self.pipeline.pool)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("spool sweep failed; trying again later")
            await asyncio.sleep(SWEEP_EVERY)

    # ---- association life ------------------------------------------------------------------

    def _held_bytes(self, key: int | None) -> int:
        """Bytes of the images one association (None: every one) holds in memory."""
        with self._lock:
            states = list(self._states.values()) if key is None else [s for s in (self._states.get(key),) if s]
        return sum(box.size for state in states for box in list(state.image_boxes.values()) if box.image is not None)

    def _on_open(self, event: evt.Event) -> None:
        sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
        if sock is not None:  # small DIMSE responses must not wait for Nagle's algorithm
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # loops woken by each message instead of polling every 1 ms; PDUs read in one go, within the budget
        make_fast(event.assoc, budget=self.budget)
        # DIMSE-N responses written without a pydicom command set (fast_dimse.py)
        event.assoc.dimse.send_msg = make_fast_responses(event.assoc, event.assoc.dimse.send_msg)

    def _state(self, event: evt.Event) -> PrintAssociation:
        key = id(event.assoc)
        with self._lock:
            state = self._states.get(key)
            if state is None:
                accepted = {cx.abstract_syntax for cx in event.assoc.accepted_contexts}
                req = event.assoc.requestor
                state = PrintAssociation(
                    calling_ae=str(req.ae_title).strip(), called_ae=self.settings.print_ae_title,
                    peer=f"{req.address}:{req.port}", print_job_class=PRINT_JOB in accepted,
                    annotation_class=ANNOTATION_BOX in accepted)
                self._states[key] = state
                self._spools[key] = AssociationSpool(self.pipeline.store, self.loop)
            return state

    def _spool(self, event: evt.Event) -> AssociationSpool:
        self._state(event)
        return self._spools[id(event.assoc)]

    def _drop_unreferenced(self, event: evt.Event, state: PrintAssociation) -> None:
        """Images spooled for boxes that are gone or were set again will never print: delete them."""
        self._spool(event).keep_only({b.spool_key for b in state.image_boxes.values() if b.spool_key})

    def _on_end(self, event: evt.Event) -> None:
        key = id(event.assoc)
        self.budget.arrived(key)
        with self._lock:
            state = self._states.pop(key, None)
            spool = self._spools.pop(key, None)
            self._session_ids.pop(key, None)
            self._pending_reports.discard(key)
        if spool is not None:
            spool.close()
        if state is not None and state.printed_films:
            with self._lock:
                self._render_on_close.add(key)
        if state is not None and state.unprinted_films():
            self.broken_sessions += 1
            log.warning("association from %s ended with %d unprinted film box(es); nothing was printed from them",
                        state.calling_ae, state.unprinted_films())

    def _on_close(self, event: evt.Event) -> None:
        """The connection is closed: render what the association printed. Not earlier: the renderer
        would compete with the rest of the association (its deletes, its release)."""
        self._on_end(event)
        with self._lock:
            printed = id(event.assoc) in self._render_on_close
            self._render_on_close.discard(id(event.assoc))
        if printed:
            self.loop.call_soon_threadsafe(self.pipeline.wake)

    # ---- dispatch --------------------------------------------------------------------------

    def _guard(self, handler: Callable[[evt.Event], Any], *, status_only: bool = False) -> Callable[[evt.Event], Any]:
        """Every failure becomes a DIMSE status; the association and the process carry on.

        N-DELETE handlers answer a status alone, the others a (status, dataset) pair.
        """

        def run(event: evt.Event) -> Any:
            try:
                return handler(event)
            except PrintFailure as exc:
                listed = exc.offending if isinstance(event.request, _LISTING) else None
                failure = _status(exc.status, exc.comment, listed)
            except Exception as exc:
                log.exception("print SCP handler failed")
                failure = _status(st.PROCESSING_FAILURE, f"{type(exc).__name__}: {exc}")
            return failure if status_only else (failure, None)

        return run

    @staticmethod
    def _class(event: evt.Event, requested: bool) -> str:
        req = _req(event)
        sop_class = str(req.RequestedSOPClassUID if requested else req.AffectedSOPClassUID)
        if sop_class not in PRINT_CLASSES or sop_class not in classes_of_context(str(event.context.abstract_syntax)):
            raise PrintFailure(st.NO_SUCH_SOP_CLASS, f"SOP class {sop_class} not on this presentation context")
        return sop_class

    @staticmethod
    def _dataset(event: evt.Event, attr: str, failure: int) -> Dataset:
        """The request's data set (`attr`: its primitive's parameter, e.g. "ModificationList"), decoded.

        Not through pynetdicom's `event.modification_list` & co, which copy the whole encoded data set
        (`getvalue()`, 8 MB for an image box) only to see whether it is empty."""
        raw = getattr(_req(event), attr, None)
        try:
            if raw is None or not raw.getbuffer().nbytes:
                return Dataset()
            ts = event.context.transfer_syntax
            ds = decode(raw, ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated)
            ds.set_original_encoding(ts.is_implicit_VR, ts.is_little_endian)
            return _materialize(ds)
        except Exception as exc:
            raise PrintFailure(failure, f"malformed dataset: {type(exc).__name__}") from None

    def _n_create(self, event: evt.Event) -> tuple[Dataset, Dataset | None]:
        sop_class = self._class(event, requested=False)
        state = self._state(event)
        uid = _req(event).AffectedSOPInstanceUID
        uid = str(uid) if uid else None
        ds = self._dataset(event, "AttributeList", st.INVALID_ATTRIBUTE_VALUE)  # 0x0107 would be a warning
        if sop_class == FILM_SESSION:
            new_uid, out, code = state.create_film_session(uid, ds)
            with self._lock:
                self._session_ids[id(event.assoc)] = str(uuid.uuid4())
        elif sop_class == FILM_BOX:
            new_uid, out, code = state.create_film_box(uid, ds, color=event.context.abstract_syntax == COLOR_META)
        elif sop_class == PRESENTATION_LUT:
            new_uid, out = state.create_presentation_lut(uid, ds)
            code = st.SUCCESS
        else:
            raise PrintFailure(st.UNRECOGNIZED_OPERATION, "N-CREATE is not defined for this SOP class")
        if uid is None:
            out.AffectedSOPInstanceUID = new_uid  # pynetdicom moves it into the response command
        return _status(code), _declared(out)

    def _n_set(self, event: evt.Event) -> tuple[Dataset, Dataset | None]:
        sop_class = self._class(event, requested=True)
        state = self._state(event)
        uid = str(_req(event).RequestedSOPInstanceUID)
        if sop_class in (GRAYSCALE_IMAGE_BOX, COLOR_IMAGE_BOX):
            return self._n_set_image_box(event, state, sop_class, uid)
        ds = self._dataset(event, "ModificationList", st.INVALID_ATTRIBUTE_VALUE)
        code = st.SUCCESS
        if sop_class == FILM_SESSION:
            out = state.set_film_session(uid, ds)
        elif sop_class == FILM_BOX:
            out, code = state.set_film_box(uid, ds)
        elif sop_class == ANNOTATION_BOX:
            out = state.set_annotation_box(uid, ds)
        else:
            raise PrintFailure(st.UNRECOGNIZED_OPERATION, "N-SET is not defined for this SOP class")
        return _status(code), _declared(out)

    def _n_set_image_box(self, event: evt.Event, state: PrintAssociation, sop_class: str,
                         uid: str) -> tuple[Dataset, Dataset | None]:
        """The request's own bytes, as they came, start on their way to the spool before they are even
        decoded (no 8 MB copy: the writer reads the received buffer); dropped again if the box refuses them."""
        spool = self._spool(event)
        raw = _req(event).ModificationList
        size = len(raw.getbuffer()) if raw is not None else 0
        box = state.image_boxes.get(uid)
        refusal = self.budget.refuse_to_hold(id(event.assoc), size,
                                             replacing=box.size if box is not None and box.image is not None else 0)
        if refusal is not None:
            raise PrintFailure(st.RESOURCE_LIMITATION, refusal)
        key = spool.put(raw.getbuffer() if raw is not None else b"", transfer_syntax=str(event.context.transfer_syntax),
                        sop_class=sop_class, image_box_uid=uid)
        try:
            ds = self._dataset(event, "ModificationList", st.INVALID_ATTRIBUTE_VALUE)
            out, code = state.set_image_box(sop_class, uid, ds)
        except BaseException:
            self._drop_unreferenced(event, state)  # this write, unless the box is set after all
            raise
        state.image_boxes[uid].spool_key = key
        state.image_boxes[uid].size = size
        self._drop_unreferenced(event, state)  # the image this box had before, if any
        return _status(code), _declared(out)

    def _n_get(self, event: evt.Event) -> tuple[Dataset, Dataset | None]:
        sop_class = self._class(event, requested=True)
        uid = str(_req(event).RequestedSOPInstanceUID)
        if sop_class == PRINTER:
            if uid != PRINTER_INSTANCE:
                raise PrintFailure(st.NO_SUCH_SOP_INSTANCE, f"the Printer instance is {PRINTER_INSTANCE}")
            s = self.settings
            ds = printer_attributes(name=s.print_printer_name, manufacturer=s.print_manufacturer,
                                    model=s.print_model, serial=s.print_serial, software="print_scp 0.1",
                                    calibrated_at=self.calibrated_at)
        elif sop_class == PRINT_JOB:
            ds = self._state(event).get_print_job(uid, self.settings.print_printer_name)
        else:
            raise PrintFailure(st.UNRECOGNIZED_OPERATION, "N-GET is not defined for this SOP class")
        wanted = event.attribute_identifiers
        if wanted:  # only what was asked for (PS3.7 10.1.2.1.4); unknown tags are simply absent
            tags = {int(t) for t in wanted}
            for elem in list(ds):
                if int(elem.tag) not in tags:
                    del ds[elem.tag]
        return _status(st.SUCCESS), ds

    def _n_action(self, event: evt.Event) -> tuple[Dataset, Dataset | None]:
        sop_class = self._class(event, requested=True)
        state = self._state(event)
        uid = str(_req(event).RequestedSOPInstanceUID)
        if sop_class not in (FILM_SESSION, FILM_BOX):
            raise PrintFailure(st.UNRECOGNIZED_OPERATION, "N-ACTION is not defined for this SOP class")
        if event.action_type != 1:
            raise PrintFailure(st.NO_SUCH_ACTION, f"action type {event.action_type}: only 1 (print)")
        if sop_class == FILM_BOX:
            jobs, code, reply = state.print_film_box(uid)
        else:
            jobs, code, reply = state.print_film_session(uid)
        if jobs:
            session_id = self._session_ids.get(id(event.assoc)) or str(uuid.uuid4())
            spool = self._spool(event)
            try:
                # The films rows are committed while the images' writes finish (not after): the answer
                # waits for both, so an answered print is durable; a crash in between leaves a row
                # whose image never arrived, which the renderer knows was never answered.
                planned = [image.spool_key for job in jobs for image in job.images]
                future = asyncio.run_coroutine_threadsafe(self.pipeline.accept(jobs, session_id=session_id),
                                                          self.loop)
                spool.ready(jobs, timeout=ACCEPT_TIMEOUT)
                future.result(timeout=ACCEPT_TIMEOUT)
                if [image.spool_key for job in jobs for image in job.images] != planned:  # a write failed
                    asyncio.run_coroutine_threadsafe(self.pipeline.respool(jobs), self.loop).result(ACCEPT_TIMEOUT)
            except Exception as exc:
                log.exception("print job not accepted")
                for job in jobs:
                    state.film_boxes[job.film_box_uid].printed = False
                    state.mark_job(job.job_uid, "FAILURE")
                raise PrintFailure(st.PROCESSING_FAILURE, f"job not stored: {type(exc).__name__}") from None
            spool.accepted(jobs)
            for job in jobs:
                state.mark_job(job.job_uid, "DONE")
            # Once per print (not per message): ties this association's correlation id to the film
            # ids that film.printed / film.matched will carry when the renderer is done with them.
            log.info("print from %s: film(s) %s spooled", state.calling_ae, ", ".join(j.film_id for j in jobs),
                     extra={"calling_ae": state.calling_ae})
            if self.settings.print_event_reports:
                with self._lock:
                    self._pending_reports.add(id(event.assoc))
                dimse = event.assoc.dimse
                if not isinstance(dimse.send_msg, _ReportAfterPrint):
                    dimse.send_msg = _ReportAfterPrint(self, event.assoc)
        return _status(code), reply if len(reply) else None

    def _n_delete(self, event: evt.Event) -> Dataset:
        sop_class = self._class(event, requested=True)
        state = self._state(event)
        uid = str(_req(event).RequestedSOPInstanceUID)
        if sop_class == FILM_SESSION:
            state.delete_film_session(uid)
        elif sop_class == FILM_BOX:
            state.delete_film_box(uid)
        elif sop_class == PRESENTATION_LUT:
            state.delete_presentation_lut(uid)
        else:
            raise PrintFailure(st.UNRECOGNIZED_OPERATION, "N-DELETE is not defined for this SOP class")
        self._drop_unreferenced(event, state)
        return _status(st.SUCCESS)

    # ---- printer status reports ------------------------------------------------------------

    def _send_printer_report(self, assoc: Any, context_id: int) -> None:
        """After a printed session's N-DELETE-RSP was queued, tell the SCU the printer is NORMAL.

        Sent from the association's own thread between two messages, after the response (not
        from EVT_DIMSE_SENT, which pynetdicom fires before it writes the message: the SCU would
        get the report while still waiting for its N-DELETE-RSP). Not waited for: pynetdicom's
        send_n_event_report waits for the reactor it would be running in. The SCU's
        N-EVENT-REPORT-RSP arrives later and is discarded by the reactor as an unsolicited response.
        """
        key = id(assoc)
        with self._lock:
            if key not in self._pending_reports:
                return
            self._pending_reports.discard(key)
            self.message_id = (self.message_id + 1) & 0xFFFF
            msg_id = self.message_id
        context = next((cx for cx in assoc.accepted_contexts if cx.context_id == context_id), None)
        if context is None or PRINTER not in classes_of_context(str(context.abstract_syntax)):
            return
        req = N_EVENT_REPORT()
        req.MessageID = msg_id
        req.AffectedSOPClassUID = PRINTER
        req.AffectedSOPInstanceUID = PRINTER_INSTANCE
        req.EventTypeID = PRINTER_EVENT_NORMAL
        info = Dataset()
        info.PrinterName = self.settings.print_printer_name
        ts = context.transfer_syntax[0]
        encoded = encode(info, ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated)
        if encoded is not None:
            req.EventInformation = BytesIO(encoded)
        try:
            assoc.dimse.send_msg(req, context_id)
        except Exception:  # a report is a courtesy; never let it break the association
            log.exception("printer N-EVENT-REPORT not sent")
