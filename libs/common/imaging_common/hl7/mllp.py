"""MLLP (Minimal Lower Layer Protocol): HL7 v2 over TCP, framed as <VT> message <FS><CR>.

`MLLPServer` accepts connections and answers each framed message with the bytes its handler
returns (an ACK); it keeps a connection open for many messages, bounds the frame size, and
never lets a handler error kill the listener. `MLLPClient` sends a message and waits for the
reply on a persistent connection, reconnecting when the peer closed it. Both are asyncio and
generic: registration receives the HIS feed with them; reporting and critical-values send with them.

A reply is matched to the message it answers by MSA-2 (= that message's MSH-10), not by its place
on the connection: when a send times out, the connection stays open and the id stays owed a reply;
when that late reply arrives it goes to `on_late_reply` (if given), never to the next send. A
reply whose MSA-2 names no message we sent (or that has none) still goes to the waiting send.

Given `metrics=HL7Metrics(service, registry)`, both count each message and time it (observe.py);
the server handles each message under its own correlation id ("<MSH-3>-<MSH-10>").

TLS (issue 18): `MLLPServer(ssl=context)` accepts MLLP over TLS (the handshake is made per
connection, bounded by `handshake_timeout`, a failure reported to the gate); `MLLPClient(ssl=context)`
connects over TLS, checking the server's name. `MLLPServer(gate=MllpGate(...))` admits only known
peers (access.py): an unknown address is closed before anything is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl as ssl_module
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from imaging_common.hl7.access import MllpGate, current_admission
from imaging_common.hl7.observe import HL7Metrics, ack_code, message_correlation_id, message_type, msh_fields
from imaging_common.observability import correlation_scope

log = logging.getLogger(__name__)

START = b"\x0b"
END = b"\x1c\r"
MAX_FRAME = 4 * 1024 * 1024  # bytes; a larger "message" is a broken peer, not a patient
HANDSHAKE_TIMEOUT = 10.0  # seconds a TLS client has to complete its handshake

Handler = Callable[[bytes, tuple[str, int]], Awaitable[bytes | None]]
LateReplyHandler = Callable[[bytes], Awaitable[None]]


class FramingError(ValueError):
    pass


def frame(payload: bytes) -> bytes:
    """<VT> payload <FS><CR>. A payload holding <VT> or <FS> would end the frame early and let the rest
    be read as another message: refused (values are escaped as \\X0B\\ / \\X1C\\ when built)."""
    if b"\x0b" in payload or b"\x1c" in payload:
        raise FramingError("an HL7 message may not contain MLLP's <VT> (0x0B) or <FS> (0x1C): escape them")
    return START + payload + END


def control_id(payload: bytes) -> str | None:
    """MSH-10 of a raw message, or None."""
    fields = msh_fields(payload)
    return (fields[9].decode("latin-1").strip() or None) if len(fields) >= 10 else None


def acknowledged_id(payload: bytes) -> str | None:
    """MSA-2 of a raw acknowledgement (the MSH-10 it answers), or None when it has no MSA."""
    fields = msh_fields(payload)
    if len(fields) < 2 or not fields[1]:
        return None
    sep = payload[payload.find(b"MSH") + 3:][:1]
    for segment in payload.replace(b"\n", b"\r").split(b"\r"):
        if segment.startswith(b"MSA" + sep):
            parts = segment.split(sep)
            if len(parts) > 2:
                return parts[2].split(fields[1][:1])[0].decode("latin-1").strip() or None
            return None
    return None


async def read_frame(reader: asyncio.StreamReader, max_size: int = MAX_FRAME) -> bytes | None:
    """The next message's bytes, or None at a clean end of stream."""
    # Skip anything before the start block (some peers send a stray CR/LF between frames).
    while True:
        byte = await reader.read(1)
        if not byte:
            return None
        if byte == START:
            break
        if byte not in (b"\r", b"\n", b" "):
            raise FramingError("data outside an MLLP frame")
    try:
        data = await reader.readuntil(b"\x1c")
    except asyncio.LimitOverrunError:
        raise FramingError("MLLP frame too large") from None
    except asyncio.IncompleteReadError:
        raise FramingError("connection closed inside an MLLP frame") from None
    if len(data) > max_size:
        raise FramingError("MLLP frame too large")
    trailer = await reader.read(1)
    if trailer not in (b"\r", b""):
        raise FramingError("MLLP end block not followed by CR")
    return data[:-1]


class MLLPServer:
    """`async with MLLPServer(handler, host, port) as server:` serves until the block exits."""

    def __init__(self, handler: Handler, host: str = "0.0.0.0", port: int = 2575, *, idle_timeout: float = 600.0,
                 metrics: HL7Metrics | None = None, ssl: ssl_module.SSLContext | None = None,
                 gate: MllpGate | None = None, handshake_timeout: float = HANDSHAKE_TIMEOUT):
        self.handler = handler
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout
        self.metrics = metrics
        self.ssl = ssl
        self.gate = gate
        self.handshake_timeout = handshake_timeout
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            if self.ssl is not None:
                try:  # here, not by start_server: a failed handshake is ours to report
                    await asyncio.wait_for(writer.start_tls(self.ssl), self.handshake_timeout)
                except (OSError, TimeoutError, ssl_module.SSLError) as exc:
                    log.warning("MLLP TLS handshake with %s failed: %s", peer[0], exc or type(exc).__name__)
                    if self.gate is not None:
                        await self.gate.handshake_failed(peer[0], exc)
                    return
            if self.gate is not None:
                ssl_object = writer.get_extra_info("ssl_object")
                admission = await self.gate.admit(peer[0], _fingerprint(ssl_object), tls=ssl_object is not None)
                if admission is None:
                    return  # an unknown peer: closed before anything is read (audited by the gate)
                current_admission.set(admission)  # this connection's task: seen by the handler
            while True:
                try:
                    payload = await asyncio.wait_for(read_frame(reader), self.idle_timeout)
                except (FramingError, TimeoutError) as exc:
                    log.warning("MLLP connection from %s closed: %s", peer[0], exc)
                    break
                if payload is None:
                    break
                started = time.perf_counter()
                fields = msh_fields(payload)
                with correlation_scope(message_correlation_id(fields)):
                    try:
                        reply = await self.handler(payload, peer)
                    except Exception:  # the handler must answer AE itself; this is the last resort
                        log.exception("MLLP handler failed for a message from %s", peer[0])
                        reply = None
                    if reply:
                        writer.write(frame(reply))
                        await writer.drain()
                if self.metrics is not None:
                    self.metrics.record("in", message_type(fields), ack_code(reply), time.perf_counter() - started)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def start(self) -> None:
        if self.ssl is None:
            self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_FRAME + 16)
        else:
            # TLS is started by _serve (a failed handshake is reported to the gate); until then the
            # connection must not be read, or the client's hello would land in the plain stream.
            loop = asyncio.get_running_loop()

            def protocol() -> asyncio.StreamReaderProtocol:
                return _UnreadProtocol(asyncio.StreamReader(limit=MAX_FRAME + 16, loop=loop), self._serve, loop=loop)

            self._server = await loop.create_server(protocol, self.host, self.port)
        sock = self._server.sockets[0].getsockname()
        self.port = sock[1]
        log.info("MLLP listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> MLLPServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class _UnreadProtocol(asyncio.StreamReaderProtocol):
    """A stream protocol that reads nothing until `start_tls` takes the connection over (it resumes reading)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if isinstance(transport, asyncio.ReadTransport):
            transport.pause_reading()
        super().connection_made(transport)


def _fingerprint(ssl_object: object) -> str | None:
    from imaging_common.tls import peer_fingerprint

    return peer_fingerprint(ssl_object) if ssl_object is not None else None


class MLLPClient:
    """A persistent connection to an MLLP peer: `reply = await client.send(message_bytes)`.

    One message is in flight at a time (MLLP has no multiplexing). A background reader takes every
    frame off the connection as it arrives and routes it by MSA-2: to the send waiting for it, or,
    for a message whose send already timed out, to `on_late_reply(reply)` (keep it short; it runs
    on the reader). So an ACK slower than the timeout never becomes the next message's reply.
    """

    def __init__(self, host: str, port: int, *, timeout: float = 30.0, metrics: HL7Metrics | None = None,
                 on_late_reply: LateReplyHandler | None = None, ssl: ssl_module.SSLContext | None = None,
                 server_hostname: str | None = None,
                 resolve: Callable[[str, int], Awaitable[str]] | None = None):
        self.host = host
        # `resolve(host, port)`: the address to connect to, checked at each connect (an outbound
        # allow-list, imaging_common.outbound: DNS rebinding cannot redirect the connection).
        self.resolve = resolve
        self.port = port
        self.ssl = ssl  # MLLP over TLS; the server's certificate must name `server_hostname` (default: host)
        self.server_hostname = server_hostname
        self.timeout = timeout
        self.metrics = metrics
        self.on_late_reply = on_late_reply
        self.late_replies = 0  # replies that arrived after their send had timed out
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pump: asyncio.Task[None] | None = None
        self._replies: asyncio.Queue[bytes | Exception | None] = asyncio.Queue()
        self._owed: Counter[str] = Counter()  # MSH-10s sent on this connection and not yet answered
        self._waiting: str | None = None  # MSH-10 of the message whose send is waiting now
        self._lock = asyncio.Lock()

    async def _connect(self) -> None:
        tls: dict[str, Any] = {} if self.ssl is None else {
            "ssl": self.ssl, "server_hostname": self.server_hostname or self.host,
            "ssl_handshake_timeout": self.timeout}
        address = await self.resolve(self.host, self.port) if self.resolve is not None else self.host
        reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(address, self.port, limit=MAX_FRAME + 16, **tls), self.timeout)
        self._reader = reader
        self._replies = asyncio.Queue()
        self._owed.clear()
        self._pump = asyncio.create_task(self._read_replies(reader, self._replies),
                                         name=f"mllp-replies-{self.host}:{self.port}")

    async def _read_replies(self, reader: asyncio.StreamReader, replies: asyncio.Queue[bytes | Exception | None]) \
            -> None:
        try:
            while True:
                reply = await read_frame(reader)
                if reply is None:
                    replies.put_nowait(None)
                    return
                ref = acknowledged_id(reply)
                if ref is not None and ref != self._waiting and self._owed[ref] > 0:
                    self._owe(ref, -1)
                    self.late_replies += 1
                    log.info("MLLP peer %s:%s answered %s after its send had timed out", self.host, self.port, ref)
                    if self.on_late_reply is not None:
                        try:
                            await self.on_late_reply(reply)
                        except Exception:
                            log.exception("late MLLP reply handler failed")
                    continue
                if ref is not None:
                    self._owe(ref, -1)
                replies.put_nowait(reply)
        except (ConnectionError, FramingError, OSError) as exc:
            replies.put_nowait(exc)

    def _owe(self, ref: str, n: int) -> None:
        self._owed[ref] += n
        if self._owed[ref] <= 0:
            del self._owed[ref]
        while len(self._owed) > 1000:  # a peer that never answers must not grow this forever
            del self._owed[next(iter(self._owed))]

    async def send(self, payload: bytes | str, *, encoding: str = "utf-8") -> bytes:
        data = payload.encode(encoding) if isinstance(payload, str) else payload
        if self.metrics is None:
            return await self._send(data)
        started = time.perf_counter()
        ack = "error"
        try:
            reply = await self._send(data)
            ack = ack_code(reply)
            return reply
        finally:
            self.metrics.record("out", message_type(msh_fields(data)), ack, time.perf_counter() - started)

    def _usable(self) -> bool:
        return (self._writer is not None and not self._writer.is_closing() and self._pump is not None
                and not self._pump.done())

    async def _send(self, data: bytes) -> bytes:
        ref = control_id(data)
        async with self._lock:  # one message in flight per connection (MLLP has no multiplexing)
            for attempt in (1, 2):
                if not self._usable():
                    await self.close()
                    await self._connect()
                assert self._writer is not None
                while not self._replies.empty():  # answers nobody waits for any more (no MSA-2 of ours)
                    stale = self._replies.get_nowait()
                    if not isinstance(stale, bytes):
                        break
                    log.warning("MLLP peer %s:%s: discarding a reply to no message waiting (%s)", self.host,
                                self.port, acknowledged_id(stale))
                if not self._usable():
                    await self.close()
                    await self._connect()
                try:
                    self._writer.write(frame(data))
                    if ref is not None:
                        self._owe(ref, 1)
                    self._waiting = ref
                    await self._writer.drain()
                    reply = await asyncio.wait_for(self._replies.get(), self.timeout)
                except ConnectionError as exc:
                    await self.close()
                    if attempt == 2:
                        raise ConnectionError(f"MLLP peer {self.host}:{self.port}: {exc}") from exc
                    continue
                finally:
                    self._waiting = None  # on a timeout the id stays owed: its late reply is not ours
                if isinstance(reply, Exception) or reply is None:
                    await self.close()
                    if attempt == 2:
                        why = f": {reply}" if reply is not None else " closed without replying"
                        raise ConnectionError(f"MLLP peer {self.host}:{self.port}{why}")
                    continue  # the peer closed an idle connection: reconnect once
                return reply
        raise ConnectionError("unreachable")

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(BaseException):
                await self._pump
            self._pump = None
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        self._reader = self._writer = None
        self._owed.clear()

    async def __aenter__(self) -> MLLPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@contextlib.asynccontextmanager
async def gated_ports(handler: Handler, *, host: str, port: int, tls_port: int | None, settings: Any,
                      registry: Any, mode: str, name: str, metrics: HL7Metrics | None = None,
                      ) -> AsyncIterator[tuple[MLLPServer, MLLPServer | None]]:
    """A service's MLLP port, and its MLLP-over-TLS twin when `tls_port` is set (IMAGING_MLLP_TLS_*),
    both admitting only the known peers of `registry` per `mode` (enforce | audit-only | off)."""
    from imaging_common.hl7.access import mllp_server_context

    gate = MllpGate(registry, mode=mode, port=name)
    context = mllp_server_context(settings) if tls_port is not None else None  # bad files: refuse to start
    async with contextlib.AsyncExitStack() as stack:
        plain = await stack.enter_async_context(MLLPServer(handler, host, port, metrics=metrics, gate=gate))
        secure = None
        if context is not None and tls_port is not None:
            secure = await stack.enter_async_context(
                MLLPServer(handler, host, tls_port, metrics=metrics, gate=gate, ssl=context))
            log.info("MLLP over TLS (%s) listening on %s:%s, client certificate %s", name, host, secure.port,
                     "required" if context.verify_mode == ssl_module.CERT_REQUIRED else "not required")
        yield plain, secure


@contextlib.asynccontextmanager
async def service_ports(ctx: Any, handler: Handler, *, host: str, port: int, tls_port: int | None, mode: str,
                        name: str) -> AsyncIterator[MLLPServer]:
    """`gated_ports` for a running service (its ServiceContext): its settings, its known-peers registry,
    its HL7 metrics; the ports bound are shared as `ctx.extras["mllp_port"]` (and `"mllp_tls_port"`)."""
    async with gated_ports(handler, host=host, port=port, tls_port=tls_port, settings=ctx.settings,
                           registry=ctx.extras.get("peers"), mode=mode, name=name,
                           metrics=HL7Metrics(ctx.spec.name, ctx.registry)) as (server, tls_server):
        ctx.extras["mllp_port"] = server.port
        if tls_server is not None:
            ctx.extras["mllp_tls_port"] = tls_server.port
        yield server


@contextlib.asynccontextmanager
async def serving(handler: Handler, host: str, port: int) -> AsyncIterator[MLLPServer]:
    async with MLLPServer(handler, host, port) as server:
        yield server
