"""The worklist's DICOM listener: MWL C-FIND, MPPS N-CREATE/N-SET and C-ECHO under one AE title.

pynetdicom runs each association in its own thread; our data lives behind asyncpg in the
service's event loop. The bridge is explicit:
- C-FIND: a coroutine on the loop (`asyncio.run_coroutine_threadsafe`) reads matching rows
  through a cursor and hands them over a bounded `queue.Queue`; the association thread turns
  each into a pending response as it arrives, so the first item reaches the modality before
  the last one is read. It polls for C-CANCEL between rows and tells the reader to stop.
- N-CREATE / N-SET: the thread waits for the domain coroutine's result (bounded by a timeout).
Nothing here blocks the event loop; nothing raises out of a handler (an exception would make
pynetdicom answer "processing failure", never abort the association, but we answer precisely).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import socket
import ssl
import struct
import threading
import time
from collections.abc import AsyncIterator, Iterator
from io import BytesIO
from typing import Any

import asyncpg
from imaging_common import audit
from imaging_common.dicom import choose_reply_charset
from imaging_common.dicom.access import (
    PeerGate,
    dicom_server_context,
    guard_tls_socket,
    start_tls_server,
    tls_lock,
)
from imaging_common.dicom.observe import DimseObserver, count_responses
from imaging_common.dicom.prompt import make_prompt
from imaging_common.dicom.rawwrite import raw_dataset
from imaging_common.peers import PeerRegistry
from imaging_common.service import ServiceContext
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)
from pynetdicom import AE, _config, evt
from pynetdicom.dimse_messages import C_FIND_RSP
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode
from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # generated at import
    ModalityPerformedProcedureStep,
    ModalityWorklistInformationFind,
    Verification,
)

from worklist.adapters.dicom.mpps import failure_status, parse_create, parse_set
from worklist.adapters.dicom.mwl import (
    REPLY_COLUMNS,
    IdentifierError,
    ParsedQuery,
    parse_identifier,
    reply_elements,
    reply_texts,
)
from worklist.adapters.dicom.replies import ReplyEncoder
from worklist.adapters.dicom.wire import message_pdus
from worklist.domain import mpps as mpps_domain
from worklist.domain.mpps import MppsError
from worklist.domain.query import select_sql
from worklist.settings import Settings

log = logging.getLogger(__name__)

PENDING, PENDING_WARNING = 0xFF00, 0xFF01
CANCELLED, OUT_OF_RESOURCES, UNABLE_TO_PROCESS = 0xFE00, 0xA700, 0xC001
_DONE = object()
QUEUE_DEPTH = 8  # batches read ahead of the sending thread
FIRST_BATCH, BATCH = 50, 200  # rows per hand-over: a selective query in one fetch, then fewer thread switches
CANCEL_POLL = 0.02  # seconds between C-CANCEL checks while waiting for a row
REQUEST_TIMEOUT = 30.0  # seconds an MPPS request may wait for the database


class _ResponseWriter:
    """`dimse.send_msg` for one association: C-FIND responses written straight to its socket.

    pynetdicom builds and encodes every response's command set through pydicom (~1 ms) and
    hands each PDU to its DUL thread through a queue that thread polls. In a C-FIND every
    pending response has the same command set: it is encoded once per status and SOP class
    for the process (only the Message ID Being Responded To differs between queries, and is
    patched in), and whole batches of
    responses go out as P-DATA-TF bytes (wire.py) in one `sendall` from the association
    thread. That thread is the only one queueing P-DATA for the association, and the peer
    waits for each response before it asks again, so the DUL thread has nothing to send
    meanwhile; writes still wait for its queue to be empty. Over TLS the DUL thread may still be
    reading (a C-CANCEL) while we write, which one SSL socket does not allow: both then take the
    association's TLS lock (imaging_common.dicom.access.guard_tls_socket). Responses carrying more than a
    status (error comments, offending elements) and everything else go through pynetdicom.
    """

    def __init__(self, assoc: Any) -> None:
        self.assoc = assoc
        self.dimse = assoc.dimse
        self.original = assoc.dimse.send_msg

    def __call__(self, primitive: Any, context_id: int) -> None:
        command = self.command(primitive)
        identifier = getattr(primitive, "Identifier", None)
        dataset = identifier.getvalue() if identifier is not None else None
        if command is None or not self.write(message_pdus(context_id, command, dataset, self.max_pdu)):
            self.original(primitive, context_id)
        else:  # written here: EVT_DIMSE_SENT never fires for it
            count_responses(self.assoc, "C-FIND", primitive.Status)

    @property
    def max_pdu(self) -> int:
        return int(self.dimse.maximum_pdu_size or 0)

    def command(self, primitive: Any) -> bytes | None:
        """The encoded command set of a C-FIND response that carries only a status; else None."""
        if type(primitive) is not C_FIND or primitive.MessageIDBeingRespondedTo is None or any(
                getattr(primitive, extra, None) is not None for extra in _STATUS_EXTRAS):
            return None
        message_id = primitive.MessageIDBeingRespondedTo
        key = (primitive.Status, primitive.AffectedSOPClassUID, primitive.Identifier is not None)
        template = _COMMAND_TEMPLATES.get(key)
        if template is None:
            message = C_FIND_RSP()
            message.primitive_to_message(primitive)
            encoded = encode(message.command_set, True, True)
            offset = encoded.find(_MESSAGE_ID_RESPONDED_TO) if encoded else -1
            if encoded is None or offset < 0:
                return None
            template = _COMMAND_TEMPLATES[key] = (encoded, offset + len(_MESSAGE_ID_RESPONDED_TO))
        encoded, at = template
        return encoded[:at] + struct.pack("<H", message_id) + encoded[at + 2:]

    def write(self, data: bytes) -> bool:
        """Send PDU bytes on the association's socket; False when it is gone (nothing more to send)."""
        sock = _socket_of(self.assoc)
        dul = getattr(self.assoc, "dul", None)
        if sock is None or dul is None:
            return False
        deadline = time.monotonic() + 1.0
        while not dul.to_provider_queue.empty() and time.monotonic() < deadline:
            time.sleep(0.0005)  # never interleave with a PDU pynetdicom is still sending
        lock = tls_lock(self.assoc)
        try:
            if lock is None:
                sock.sendall(data)
            else:
                with lock:
                    sock.sendall(data)
        except OSError:
            dul.event_queue.put("Evt17")  # transport closed: what pynetdicom's own send reports
            return False
        _keep_alive(self.assoc)
        _set_quick_ack(sock)
        return True


# Optional C-FIND response parameters: a response with any of them goes through pynetdicom.
_STATUS_EXTRAS = C_FIND.STATUS_OPTIONAL_KEYWORDS  # ErrorComment, OffendingElement
# (0000,0120) Message ID Being Responded To with its length 2, implicit VR little endian
_MESSAGE_ID_RESPONDED_TO = b"\x00\x00\x20\x01\x02\x00\x00\x00"
# (status, SOP class, has a data set) -> encoded command set and where its message ID goes;
# shared by all associations (pydicom takes ~1 ms to encode one, twice per association otherwise)
_COMMAND_TEMPLATES: dict[tuple[Any, ...], tuple[bytes, int]] = {}


def _pending_response(request: Any, status: int) -> C_FIND:
    """A pending C-FIND response as pynetdicom builds it (for its command set)."""
    rsp = C_FIND()
    rsp.MessageID = request.MessageID
    rsp.MessageIDBeingRespondedTo = request.MessageID
    rsp.AffectedSOPClassUID = request.AffectedSOPClassUID
    rsp.Status = status
    rsp.Identifier = BytesIO(b"\0\0")  # present: the command says a data set follows
    return rsp


def _socket_of(assoc: Any) -> socket.socket | None:
    return getattr(getattr(getattr(assoc, "dul", None), "socket", None), "socket", None)


def _quick_ack(event: Any) -> None:
    """ACK what the modality sent at once. A modality with Nagle's algorithm on (DCMTK's findscu
    unless TCP_NODELAY=1) writes a C-FIND as two segments and holds the second until the first is
    ACKed, which Linux delays ~40 ms: every query would wait that long for nothing. Linux leaves
    quick-ACK mode by itself (as soon as we answer), so it is set again after each PDU sent or
    received."""
    sock = _socket_of(event.assoc)
    if sock is not None:
        _set_quick_ack(sock)


def _set_quick_ack(sock: socket.socket) -> None:
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if quickack is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)


def _pdu_sent(event: Any) -> None:
    _keep_alive(event.assoc)
    _quick_ack(event)  # sending put the socket back in delayed-ACK ("ping-pong") mode


def _keep_alive(assoc: Any) -> None:
    """Tell pynetdicom the association is busy, not idle: its network timeout counts only data
    received, and a modality reading 100,000 responses sends nothing for a minute. Called for
    every PDU we send (responses queue up faster than pynetdicom's DUL thread sends them)."""
    timer = getattr(getattr(assoc, "dul", None), "_idle_timer", None)
    if timer is not None:
        timer.restart()


def _status(code: int, comment: str | None = None, offending: list[int] | None = None) -> Dataset:
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = comment[:64]
    if offending:
        ds.OffendingElement = offending
    return ds


class WorklistSCP:
    """One AE answering MWL C-FIND and MPPS; `start()` binds the port, `stop()` closes it."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings, loop: asyncio.AbstractEventLoop,
                 peers: PeerRegistry | None = None) -> None:
        self.pool = pool
        self.settings = settings
        self.loop = loop
        self.tz = settings.tz
        self.server: Any = None
        self.tls_server: Any = None
        # Known peers (issue 18): calling AE title + address (+ certificate), per IMAGING_WORKLIST_PEERS.
        self.gate = PeerGate(peers, mode=settings.peer_mode(settings.worklist_peers), port="worklist")
        # pynetdicom formats every C-FIND response identifier for a DEBUG log line whether or not
        # DEBUG is on, which costs more than building the response; keep identifiers out of logs
        # (they carry patient data anyway). Process-wide: it is a pynetdicom module setting.
        _config.LOG_RESPONSE_IDENTIFIERS = False
        _config.LOG_REQUEST_IDENTIFIERS = False
        logging.getLogger("pynetdicom").setLevel(settings.worklist_dicom_log_level.upper())
        self.ae = AE(ae_title=settings.worklist_ae_title)
        self.ae.require_called_aet = settings.worklist_require_called_ae
        self.ae.maximum_associations = settings.worklist_max_associations
        self.ae.maximum_pdu_size = 0  # no limit on our side; the peer's limit applies to what we send
        self.ae.network_timeout = settings.worklist_network_timeout
        # Little endian only (big endian is retired): replies are written as raw little-endian bytes.
        syntaxes = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian]
        for sop_class in (ModalityWorklistInformationFind, ModalityPerformedProcedureStep, Verification):
            self.ae.add_supported_context(sop_class, syntaxes)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        handlers: list[Any] = [
            (evt.EVT_CONN_OPEN, self.on_connection),
            (evt.EVT_PDU_SENT, _pdu_sent),
            (evt.EVT_PDU_RECV, _quick_ack),
            (evt.EVT_C_FIND, self.on_find),
            (evt.EVT_N_CREATE, self.on_n_create),
            (evt.EVT_N_SET, self.on_n_set),
            *self.gate.handlers(),
        ]
        tls_context = dicom_server_context(self.settings) if self.settings.worklist_tls_port is not None else None
        self.server = self.ae.start_server(
            (self.settings.worklist_host, self.settings.worklist_port), block=False, evt_handlers=handlers)
        log.info("worklist SCP %s listening on %s:%s (known peers: %s)", self.settings.worklist_ae_title,
                 self.settings.worklist_host, self.port, self.gate.mode)
        if tls_context is not None and self.settings.worklist_tls_port is not None:
            self.tls_server = start_tls_server(
                self.ae, (self.settings.worklist_host, self.settings.worklist_tls_port), tls_context, handlers,
                on_handshake_failure=self.gate.on_handshake_failure)
            log.info("worklist SCP %s listening for DICOM TLS on %s:%s (client certificate %s)",
                     self.settings.worklist_ae_title, self.settings.worklist_host, self.tls_port,
                     "required" if tls_context.verify_mode == ssl.CERT_REQUIRED else "not required")

    def stop(self) -> None:
        for server in (self.tls_server, self.server):
            if server is not None:
                server.shutdown()
        self.server = self.tls_server = None

    @property
    def port(self) -> int:
        return int(self.server.server_address[1]) if self.server else self.settings.worklist_port

    @property
    def tls_port(self) -> int | None:
        return int(self.tls_server.server_address[1]) if self.tls_server else self.settings.worklist_tls_port

    @staticmethod
    def on_connection(event: Any) -> None:
        """Send each PDU at once: pynetdicom writes a response in several small segments, and
        Nagle's algorithm against the peer's delayed ACK would hold each reply ~40 ms. And let
        pynetdicom's loops wake on work rather than sleep through it (prompt.py)."""
        make_prompt(event.assoc)
        guard_tls_socket(event.assoc)  # over TLS: our direct writes and the DUL's reads take turns
        sock = _socket_of(event.assoc)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _quick_ack(event)


    # -- C-FIND ------------------------------------------------------------------------------

    def on_find(self, event: Any) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        calling = event.assoc.requestor.ae_title
        try:
            parsed = parse_identifier(event.identifier, coding_scheme=self.settings.worklist_coding_scheme)
        except IdentifierError as exc:
            log.info("C-FIND from %s refused: %s", calling, exc.comment)
            yield _status(exc.status, exc.comment, exc.offending), None
            return
        except Exception as exc:  # noqa: BLE001 - an identifier pydicom cannot even read
            yield _status(0xA900, f"identifier cannot be read: {type(exc).__name__}"), None
            return

        limit = self.settings.worklist_max_results
        implicit = UID(event.context.transfer_syntax).is_implicit_VR
        dimse = event.assoc.dimse
        if not isinstance(dimse.send_msg, _ResponseWriter):
            dimse.send_msg = _ResponseWriter(event.assoc)
        writer: _ResponseWriter = dimse.send_msg
        pending = PENDING_WARNING if parsed.unsupported else PENDING
        # Deflated syntaxes: pynetdicom compresses each identifier, so those are yielded to it.
        # Otherwise pendings are written here, a batch of rows at a time (see _ResponseWriter).
        direct = UID(event.context.transfer_syntax) != DeflatedExplicitVRLittleEndian
        command = writer.command(_pending_response(event.request, pending)) if direct else None
        encode_reply = ReplyEncoder(parsed, implicit=implicit, fallback_charset=self.settings.worklist_reply_charset)
        context_id = event.context.context_id
        rows: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)
        stop = threading.Event()
        asyncio.run_coroutine_threadsafe(self._read(parsed, rows, stop, limit + 1, calling), self.loop)
        sent = 0
        out: list[bytes] = []
        try:
            done = False
            while not done:
                if event.is_cancelled:
                    yield CANCELLED, None
                    return
                try:
                    batch = rows.get(timeout=CANCEL_POLL)
                except queue.Empty:
                    continue
                if isinstance(batch, BaseException):
                    log.error("worklist query failed: %r", batch)
                    yield _status(UNABLE_TO_PROCESS, "worklist database unavailable"), None
                    return
                max_pdu = writer.max_pdu
                for row in batch:
                    if row is _DONE:
                        done = True
                        break
                    if sent == limit:
                        writer.write(b"".join(out))
                        yield _status(OUT_OF_RESOURCES, f"more than {limit} matches: narrow the query"), None
                        return
                    if sent and event.is_cancelled:
                        writer.write(b"".join(out))
                        yield CANCELLED, None
                        return
                    if command is not None:
                        out.append(message_pdus(context_id, command, encode_reply(row), max_pdu))
                    else:
                        yield pending, self._reply(row, parsed, implicit)
                    sent += 1
                if out:  # what this batch matched leaves now; the next batch is being read meanwhile
                    if not writer.write(b"".join(out)):
                        return  # the connection is gone: pynetdicom winds the association up
                    out.clear()
            yield 0x0000, None
        finally:
            # The reader stops at its next row (cancel, limit, closed association) or ends by
            # itself, writing the audit row after the modality has its answer. Not waited for:
            # this runs when pynetdicom lets go of the handler, and waiting would hold the
            # association (the modality's next request or its release) for the audit's commit.
            stop.set()
            if command is not None:
                count_responses(event.assoc, "C-FIND", pending, sent)

    def _elements(self, row: Any, parsed: ParsedQuery) -> tuple[list[Any], str | None]:
        elements = reply_elements(row, parsed)
        charset = choose_reply_charset(
            reply_texts(elements), requested=parsed.charsets, fallback=self.settings.worklist_reply_charset)
        return elements, charset

    def _reply(self, row: Any, parsed: ParsedQuery, implicit: bool) -> Dataset:
        elements, charset = self._elements(row, parsed)
        return raw_dataset(elements, charset=charset, implicit=implicit)

    async def _read(self, parsed: ParsedQuery, rows: queue.Queue[Any], stop: threading.Event, limit: int,
                    calling: str) -> None:
        """On the loop: stream matching rows into `rows` in small batches, then _DONE (or the exception).

        The first batch is small so the first pending response leaves at once; later batches are
        what the cursor fetched, handed over together to spare a thread switch per row.
        """
        count = 0
        try:
            async with self.pool.acquire() as conn:
                async with conn.transaction(readonly=True):
                    sql, args = select_sql(parsed.query, limit=limit, columns=REPLY_COLUMNS)
                    cursor = await conn.cursor(sql, *args)
                    size = FIRST_BATCH
                    while not stop.is_set():
                        batch: list[Any] = await cursor.fetch(size)
                        count += len(batch)
                        if len(batch) < size:
                            batch.append(_DONE)
                        if not await self._put(rows, batch, stop) or batch[-1] is _DONE:
                            break
                        size = BATCH
                with contextlib.suppress(Exception):  # the audit trail must not fail the modality's query
                    await audit.record_read(conn, actor=f"dicom:{calling}", entity="worklist",
                                            detail={"protocol": "MWL C-FIND", "matches": count,
                                                    "query": _summary(parsed)})
        except BaseException as exc:  # handed to the thread, which answers with a failure status
            await self._put(rows, exc, stop)
            if not isinstance(exc, Exception):
                raise

    @staticmethod
    async def _put(rows: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
        while not stop.is_set():
            try:
                rows.put_nowait(item)
                return True
            except queue.Full:
                await asyncio.sleep(0.002)  # the sender is behind; wait without blocking the loop
        return False

    # -- MPPS --------------------------------------------------------------------------------

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=REQUEST_TIMEOUT)

    def on_n_create(self, event: Any) -> tuple[int | Dataset, Dataset | None]:
        req = event.request
        uid = req.AffectedSOPInstanceUID or generate_uid()
        calling = event.assoc.requestor.ae_title
        try:
            step = parse_create(event.attribute_list, self.tz)
            self._run(self._create(uid, step, calling))
        except MppsError as exc:
            log.info("MPPS N-CREATE %s from %s refused: %s", uid, calling, exc.comment)
            return failure_status(exc), None
        except Exception:
            log.exception("MPPS N-CREATE %s failed", uid)
            return _status(0x0110, "processing failure"), None
        reply = Dataset()
        if not req.AffectedSOPInstanceUID:
            reply.AffectedSOPInstanceUID = uid  # pynetdicom moves it to the response command
        return 0x0000, reply

    async def _create(self, uid: str, step: mpps_domain.PerformedStep, calling: str) -> None:
        async with self.pool.acquire() as conn:
            await mpps_domain.create(conn, uid, step, calling_ae_title=calling)

    def on_n_set(self, event: Any) -> tuple[int | Dataset, Dataset | None]:
        uid = event.request.RequestedSOPInstanceUID
        try:
            change = parse_set(event.modification_list, self.tz)
            self._run(self._update(uid, change, event.assoc.requestor.ae_title))
        except MppsError as exc:
            log.info("MPPS N-SET %s refused: %s", uid, exc.comment)
            return failure_status(exc), None
        except Exception:
            log.exception("MPPS N-SET %s failed", uid)
            return _status(0x0110, "processing failure"), None
        return 0x0000, Dataset()

    async def _update(self, uid: str, change: mpps_domain.PerformedStep, calling: str) -> None:
        async with self.pool.acquire() as conn:
            await mpps_domain.update(conn, uid, change, actor=f"dicom:{calling}")


def _summary(parsed: ParsedQuery) -> dict[str, Any]:
    q = parsed.query
    out = {k: v for k, v in vars(q).items() if v not in (None, [], "") and k != "start"}
    if q.start is not None:
        out["start"] = [str(q.start.start), str(q.start.end)]
    return out


@contextlib.asynccontextmanager
async def worklist_listener(ctx: ServiceContext[Settings]) -> AsyncIterator[WorklistSCP]:
    """ServiceSpec listener: the SCP runs while the service runs (`ctx.extras["worklist_scp"]`)."""
    scp = WorklistSCP(ctx.pool, ctx.settings, asyncio.get_running_loop(), peers=ctx.extras.get("peers"))
    await asyncio.to_thread(scp.start)
    # Association and DIMSE counts on /metrics, a correlation id per association (MPPS events carry it).
    observer = DimseObserver(ctx.spec.name, ctx.registry)
    for server in (scp.server, scp.tls_server):
        if server is not None:
            observer.bind(server)
    ctx.extras["worklist_scp"] = scp
    started = time.monotonic()
    try:
        yield scp
    finally:
        ctx.extras.pop("worklist_scp", None)
        await asyncio.to_thread(scp.stop)
        log.info("worklist SCP stopped after %.0f s", time.monotonic() - started)
