"""A pynetdicom SCP's counters and correlation ids, as notification handlers added beside its own.

    observer = DimseObserver(ctx.spec.name, ctx.registry)
    handlers += observer.handlers()        # before ae.start_server(..., evt_handlers=handlers)
    observer.bind(server)                  # or on a server already running

Each association gets a new correlation id when it is accepted (or rejected), logged once with
the calling AE title. It is bound in the association's own thread, where pynetdicom calls every
DIMSE handler of that association, so their log lines carry it, and so do the coroutines they
hand to the event loop with `asyncio.run_coroutine_threadsafe` (and any event those put in
the outbox). Counted on the service's registry:

    dicom_associations_total{service, outcome}        accepted, rejected, released, aborted
    dicom_associations_active{service}                associations open now
    dicom_dimse_responses_total{service, command, status}
                                                      responses sent: command "C-FIND", "N-ACTION"...,
                                                      status success / pending / warning / cancel / failure

Responses are counted as pynetdicom sends them (EVT_DIMSE_SENT). An SCP that writes responses to
the socket itself (the worklist's C-FIND fast path) counts those with
`count_responses(assoc, "C-FIND", status, n)`. Cheap on purpose: a dictionary lookup and a counter
increment per response (a few µs), nothing logged per message.
This module imports pynetdicom (the rest of imaging_common.dicom does not): import it by name.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from pynetdicom import evt

from imaging_common.observability import bind_correlation_id, new_correlation_id, registered

log = logging.getLogger(__name__)

SUCCESS, PENDING, WARNING, CANCEL, FAILURE = "success", "pending", "warning", "cancel", "failure"
STATUS_TAG = 0x00000900  # (0000,0900) Status, in a response's command set
_OBSERVER = "_imaging_dimse_observer"  # attribute of an accepted Association naming its observer


def status_class(code: int | None) -> str:
    """The class of a DIMSE status (PS3.7 Annex C): success, pending, warning, cancel or failure."""
    if code == 0x0000:
        return SUCCESS
    if code in (0xFF00, 0xFF01):
        return PENDING
    if code == 0xFE00:
        return CANCEL
    if code is not None and (code == 0x0001 or 0xB000 <= code <= 0xBFFF or code in (0x0107, 0x0116)):
        return WARNING
    return FAILURE


def count_responses(assoc: Any, command: str, status: int, n: int = 1) -> None:
    """Count `n` responses an SCP wrote itself, bypassing `dimse.send_msg` (so EVT_DIMSE_SENT never
    fired for them): `count_responses(event.assoc, "C-FIND", 0xFF00, len(batch))`. No-op when the
    association is not observed."""
    observer: DimseObserver | None = getattr(assoc, _OBSERVER, None)
    if observer is not None:
        observer.count(command, status, n)


def _calling(assoc: Any) -> tuple[str, str]:
    requestor = assoc.requestor
    title = requestor.ae_title
    title = title.decode("ascii", "replace") if isinstance(title, bytes) else str(title)
    return title.strip(), f"{requestor.address}:{requestor.port}"


class DimseObserver:
    """Counters and correlation ids of one service's SCP; thread-safe (pynetdicom calls from many threads)."""

    def __init__(self, service: str, registry: CollectorRegistry | None) -> None:
        self.service = service
        self.associations = registered(
            Counter, "dicom_associations", "DICOM associations by outcome (accepted, rejected, released, aborted)",
            ["service", "outcome"], registry)
        self.active = registered(Gauge, "dicom_associations_active", "DICOM associations open now", ["service"],
                                 registry)
        self.responses = registered(
            Counter, "dicom_dimse_responses", "DIMSE responses sent, by command and status class",
            ["service", "command", "status"], registry)
        self._children: dict[tuple[str, str], Any] = {}  # (message class, status class) -> counter child
        self._open: set[int] = set()
        self._lock = threading.Lock()
        self.active.labels(service)  # present (0) before the first association

    def handlers(self) -> list[tuple[evt.EventType, Callable[[evt.Event], None]]]:
        return [
            (evt.EVT_ACCEPTED, self._accepted),
            (evt.EVT_REJECTED, self._rejected),
            (evt.EVT_DIMSE_SENT, self._sent),
            (evt.EVT_RELEASED, self._released),
            (evt.EVT_ABORTED, self._aborted),
            (evt.EVT_CONN_CLOSE, self._closed),
        ]

    def bind(self, server: Any) -> None:
        """Add the handlers to a running `AssociationServer` (and its open associations)."""
        for event, handler in self.handlers():
            server.bind(event, handler)

    # -- association life (in the association's thread) ---------------------------------------

    def _accepted(self, event: evt.Event) -> None:
        cid = new_correlation_id()
        bind_correlation_id(cid)  # this thread is this association's: the id lasts as long as it
        setattr(event.assoc, _CORRELATION_ID, cid)  # for its other threads (bind_association_id)
        calling, peer = _calling(event.assoc)
        log.info("DICOM association from %s (%s) accepted by %s", calling, peer, self.service,
                 extra={"service": self.service, "calling_ae": calling, "peer": peer})
        setattr(event.assoc, _OBSERVER, self)  # for count_responses
        with self._lock:
            self._open.add(id(event.assoc))
        self.associations.labels(self.service, "accepted").inc()
        self.active.labels(self.service).inc()

    def _rejected(self, event: evt.Event) -> None:
        bind_correlation_id(new_correlation_id())
        calling, peer = _calling(event.assoc)
        log.info("DICOM association from %s (%s) rejected by %s", calling, peer, self.service,
                 extra={"service": self.service, "calling_ae": calling, "peer": peer})
        self.associations.labels(self.service, "rejected").inc()

    def _released(self, event: evt.Event) -> None:
        self.associations.labels(self.service, "released").inc()
        self._end(event)

    def _aborted(self, event: evt.Event) -> None:
        calling, peer = _calling(event.assoc)
        log.info("DICOM association from %s (%s) aborted", calling, peer,
                 extra={"service": self.service, "calling_ae": calling, "peer": peer})
        self.associations.labels(self.service, "aborted").inc()
        self._end(event)

    def _closed(self, event: evt.Event) -> None:
        self._end(event)  # a connection dropped without release or abort still leaves the gauge

    def _end(self, event: evt.Event) -> None:
        with self._lock:
            if id(event.assoc) not in self._open:
                return
            self._open.discard(id(event.assoc))
        self.active.labels(self.service).dec()

    # -- messages ------------------------------------------------------------------------------

    def _sent(self, event: evt.Event) -> None:
        message = event.message  # type: ignore[attr-defined]
        name = type(message).__name__  # "C_FIND_RSP", "N_ACTION_RSP", "N_EVENT_REPORT_RQ"
        if not name.endswith("_RSP"):
            return
        command_set = message.command_set
        # pydicom's element map: ~1 µs, where `command_set.Status` costs ~15 µs per response.
        element = getattr(command_set, "_dict", {}).get(STATUS_TAG) or command_set.get(STATUS_TAG)
        self.count(name[:-4].replace("_", "-"), element.value if element is not None else None)

    def count(self, command: str, status: int | None, n: int = 1) -> None:
        """Count `n` responses of `command` ("C-FIND") with DIMSE status `status`."""
        kind = status_class(status)
        child = self._children.get((command, kind))
        if child is None:
            child = self._children[(command, kind)] = self.responses.labels(self.service, command, kind)
        child.inc(n)


_CORRELATION_ID = "_imaging_correlation_id"


def bind_association_id(assoc: Any) -> None:
    """In another thread of an association (its DUL thread answering requests, say), log under the
    association's correlation id, as its own thread does."""
    cid = getattr(assoc, _CORRELATION_ID, None)
    if cid is not None:
        bind_correlation_id(cid)

