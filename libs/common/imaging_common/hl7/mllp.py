"""MLLP (Minimal Lower Layer Protocol): HL7 v2 over TCP, framed as <VT> message <FS><CR>.

`MLLPServer` accepts connections and answers each framed message with the bytes its handler
returns (an ACK); it keeps a connection open for many messages, bounds the frame size, and
never lets a handler error kill the listener. `MLLPClient` sends a message and waits for the
reply on a persistent connection, reconnecting when the peer closed it. Both are asyncio and
generic: registration receives the HIS feed with them; reporting and critical-values send with them.

Given `metrics=HL7Metrics(service, registry)`, both count each message and time it (observe.py);
the server handles each message under its own correlation id ("<MSH-3>-<MSH-10>").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from imaging_common.hl7.observe import HL7Metrics, ack_code, message_correlation_id, message_type, msh_fields
from imaging_common.observability import correlation_scope

log = logging.getLogger(__name__)

START = b"\x0b"
END = b"\x1c\r"
MAX_FRAME = 4 * 1024 * 1024  # bytes; a larger "message" is a broken peer, not a patient

Handler = Callable[[bytes, tuple[str, int]], Awaitable[bytes | None]]


class FramingError(ValueError):
    pass


def frame(payload: bytes) -> bytes:
    return START + payload + END


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
                 metrics: HL7Metrics | None = None):
        self.handler = handler
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout
        self.metrics = metrics
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
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
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_FRAME + 16)
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


class MLLPClient:
    """A persistent connection to an MLLP peer: `reply = await client.send(message_bytes)`."""

    def __init__(self, host: str, port: int, *, timeout: float = 30.0, metrics: HL7Metrics | None = None):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.metrics = metrics
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, limit=MAX_FRAME + 16), self.timeout)

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

    async def _send(self, data: bytes) -> bytes:
        async with self._lock:  # one message in flight per connection (MLLP has no multiplexing)
            for attempt in (1, 2):
                if self._writer is None or self._writer.is_closing():
                    await self._connect()
                assert self._reader is not None and self._writer is not None
                try:
                    self._writer.write(frame(data))
                    await self._writer.drain()
                    reply = await asyncio.wait_for(read_frame(self._reader), self.timeout)
                except (ConnectionError, FramingError) as exc:
                    await self.close()
                    if attempt == 2:
                        raise ConnectionError(f"MLLP peer {self.host}:{self.port}: {exc}") from exc
                    continue
                if reply is None:  # the peer closed an idle connection: reconnect once
                    await self.close()
                    if attempt == 2:
                        raise ConnectionError(f"MLLP peer {self.host}:{self.port} closed without replying")
                    continue
                return reply
        raise ConnectionError("unreachable")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        self._reader = self._writer = None

    async def __aenter__(self) -> MLLPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@contextlib.asynccontextmanager
async def serving(handler: Handler, host: str, port: int) -> AsyncIterator[MLLPServer]:
    async with MLLPServer(handler, host, port) as server:
        yield server
