"""Who may speak to a DICOM SCP, and over TLS: shared by the worklist and print SCPs.

- `PeerGate`: bound to EVT_REQUESTED, checks the A-ASSOCIATE-RQ's calling AE title, the peer's
  address and (over TLS) its certificate against the service's known peers (imaging_common.peers).
  An unknown one is refused with A-ASSOCIATE-RJ, permanent, DUL service user, "calling AE title not
  recognized" (PS3.8 9.3.4: result 1, source 1, reason 3) in mode "enforce", let in under
  "audit-only"; audited either way.
- `start_tls_server`: a second listener of the same AE, over TLS (PS3.15 B.9 BCP 195 through
  `imaging_common.tls.server_context`). pynetdicom's own server does the TLS handshake in its
  accept loop, so one silent client would hold every other connection; here the handshake runs
  in the association's own thread, bounded by `handshake_timeout`, and a failed one (no client
  certificate when mutual TLS is required, an old protocol) is logged and reported.
- `guard_tls_socket`: an SSL socket must not be read and written by two threads at once (OpenSSL);
  a service writing PDUs itself beside pynetdicom's DUL thread (the worklist's C-FIND fast path)
  takes the lock it returns; the DUL's reads and writes take it too.

Adopting it in an SCP (print-scp, for instance):

    gate = PeerGate(registry, mode=settings.peer_mode(settings.print_peers), port="print-scp")
    handlers = [*handlers, (evt.EVT_REQUESTED, gate.on_requested)]
    server = ae.start_server(address, block=False, evt_handlers=handlers)
    if settings.print_tls_port is not None:
        tls = start_tls_server(ae, (host, settings.print_tls_port), dicom_server_context(settings),
                               handlers, on_handshake_failure=gate.on_handshake_failure)
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

from pynetdicom import evt
from pynetdicom.transport import ThreadedAssociationServer
from pynetdicom.utils import make_target

from imaging_common.peers import OFF, Decision, PeerRegistry
from imaging_common.tls import peer_fingerprint, server_context

log = logging.getLogger(__name__)

REJECTED_PERMANENT, SERVICE_USER, CALLING_AE_NOT_RECOGNIZED = 0x01, 0x01, 0x03
HANDSHAKE_TIMEOUT = 10.0
_LOCK_ATTRIBUTE = "_imaging_tls_lock"


def dicom_server_context(settings: Any) -> ssl.SSLContext:
    """The DICOM TLS context from IMAGING_DICOM_TLS_* (mutual TLS: the setting, else when a CA is given)."""
    require = settings.dicom_tls_require_client_cert
    if require is None:
        require = settings.dicom_tls_ca_file is not None
    return server_context(settings.dicom_tls_cert_file, settings.dicom_tls_key_file,
                          ca_file=settings.dicom_tls_ca_file, require_client_cert=require, what="DICOM TLS")


def socket_of(assoc: Any) -> socket.socket | None:
    return getattr(getattr(getattr(assoc, "dul", None), "socket", None), "socket", None)


class PeerGate:
    """EVT_REQUESTED handler refusing calling AEs the registry does not know (see module doc)."""

    def __init__(self, registry: PeerRegistry | None, *, mode: str, port: str) -> None:
        self.registry = registry
        self.mode = mode
        self.port = port

    def handlers(self) -> list[tuple[Any, Callable[..., Any]]]:
        return [] if self.registry is None or self.mode == OFF else [(evt.EVT_REQUESTED, self.on_requested)]

    def decide(self, assoc: Any) -> Decision | None:
        if self.registry is None:
            return None
        primitive = assoc.requestor.primitive
        calling = str(getattr(primitive, "calling_ae_title", "") or "").strip()
        return self.registry.check_dicom(calling, assoc.requestor.address, peer_fingerprint(socket_of(assoc)),
                                         mode=self.mode)

    def on_requested(self, event: Any) -> None:
        assoc = event.assoc
        try:
            decision = self.decide(assoc)
        except Exception:  # never let a bug here accept what enforce mode should refuse
            log.exception("known-peer check failed on %s", self.port)
            if self.mode == "enforce":
                _reject(assoc)
            return
        if decision is None or decision.known:
            return
        primitive = assoc.requestor.primitive
        calling = str(getattr(primitive, "calling_ae_title", "") or "").strip()
        assert self.registry is not None
        self.registry.audit_soon(decision, port=self.port, protocol="DICOM", who=f"dicom:{calling}", detail={
            "calling_ae_title": calling, "called_ae_title": str(getattr(primitive, "called_ae_title", "")).strip(),
            "tls": isinstance(socket_of(assoc), ssl.SSLSocket)})
        if not decision.admitted:
            _reject(assoc)

    def on_handshake_failure(self, address: tuple[str, int], error: BaseException) -> None:
        """A TLS handshake that failed on our TLS port: audited as a refused peer."""
        if self.registry is None:
            return
        self.registry.audit_soon(
            Decision(self.mode if self.mode != OFF else "enforce", False, False,
                     reason=f"TLS handshake failed: {error}", host=address[0]),
            port=f"{self.port}-tls", protocol="DICOM TLS", who=f"tls:{address[0]}")


def _reject(assoc: Any) -> None:
    """A-ASSOCIATE-RJ 1/1/3, then wind the association up as pynetdicom does for its own rejections
    (EVT_REJECTED, and wait for the DUL to have sent it before the socket is closed)."""
    assoc.acse.send_reject(REJECTED_PERMANENT, SERVICE_USER, CALLING_AE_NOT_RECOGNIZED)
    evt.trigger(assoc, evt.EVT_REJECTED, {})
    assoc.kill()


class TLSAssociationServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with the TLS handshake moved out of its accept loop."""

    handshake_timeout: float = HANDSHAKE_TIMEOUT
    on_handshake_failure: Callable[[tuple[str, int], BaseException], None] | None = None

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        assert self.socket is not None
        client, address = self.socket.accept()
        if self.ssl_context:
            try:
                client = self.ssl_context.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
            except (OSError, ValueError):
                client.close()
                raise
        return client, address

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            try:
                request.settimeout(self.handshake_timeout)
                request.do_handshake()
                request.settimeout(None)  # as pynetdicom's accepted sockets: its own timers decide
            except (OSError, ValueError) as exc:
                log.warning("DICOM TLS handshake with %s failed: %s", client_address[0], exc)
                if self.on_handshake_failure is not None:
                    with contextlib.suppress(Exception):
                        self.on_handshake_failure(client_address, exc)
                self.shutdown_request(request)
                return
        super().process_request_thread(request, client_address)


def start_tls_server(ae: Any, address: tuple[str, int], ssl_context: ssl.SSLContext,
                     evt_handlers: list[Any], *,
                     on_handshake_failure: Callable[[tuple[str, int], BaseException], None] | None = None,
                     handshake_timeout: float = HANDSHAKE_TIMEOUT) -> TLSAssociationServer:
    """Start a non-blocking TLS listener of `ae` (stop it with `server.shutdown()`)."""
    server = ae.make_server(address, ssl_context=ssl_context, evt_handlers=evt_handlers,
                            server_class=TLSAssociationServer)
    server.handshake_timeout = handshake_timeout
    server.on_handshake_failure = on_handshake_failure
    thread = threading.Thread(target=make_target(server.serve_forever), name=f"TLSAcceptor@{address[1]}",
                              daemon=True)
    thread.start()
    ae._servers.append(server)  # AE.shutdown() stops it with the others
    return server


def guard_tls_socket(assoc: Any) -> threading.Lock | None:
    """For an association over TLS: make the DUL's socket reads and writes take one lock, and return
    it (also kept on the association, `tls_lock(assoc)`), so another thread can write PDUs between
    them. Plain TCP: None (a socket can be read and written by two threads at once)."""
    assoc_socket: Any = getattr(getattr(assoc, "dul", None), "socket", None)
    if assoc_socket is None or not isinstance(getattr(assoc_socket, "socket", None), ssl.SSLSocket):
        return None
    lock = threading.Lock()
    recv, send = assoc_socket.recv, assoc_socket.send

    def locked_recv(nr_bytes: int) -> Any:
        with lock:
            return recv(nr_bytes)

    def locked_send(data: bytes) -> Any:
        with lock:
            return send(data)

    assoc_socket.recv = locked_recv
    assoc_socket.send = locked_send
    setattr(assoc, _LOCK_ATTRIBUTE, lock)
    return lock


def tls_lock(assoc: Any) -> threading.Lock | None:
    return getattr(assoc, _LOCK_ATTRIBUTE, None)
