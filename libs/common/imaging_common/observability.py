"""Structured JSON logs carrying a correlation id across HTTP, events and DICOM/HL7 handling.

Where a correlation id is bound (each binds it in the task or thread that does the work):
  HTTP     `RequestMetrics` (service.py): the caller's X-Correlation-ID, or a new one
  events   the consumer: the event's `correlationid` (the cause's id), else the event id
  HL7      `MLLPServer`: "<MSH-3>-<MSH-10>" of each message received (hl7/observe.py)
  DICOM    `DimseObserver`: a new id per association, logged with the calling AE (dicom/observe.py)
Everything logged meanwhile carries it, and every event put in the outbox then carries it as
its CloudEvents `correlationid`, so one patient's path can be followed across services.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from imaging_common.config import CommonSettings

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)
# What a correlation id may look like when it comes from outside (a header, an HL7 field):
# short and plain, so it can go back into a header and never forges a log line.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def bind_correlation_id(cid: str | None) -> None:
    """Tag everything logged from this task (and the tasks it starts) with `cid`.

    A thread starts with an empty context: bound in a pynetdicom association thread, the id
    stays for that association, and coroutines it hands to the loop with
    `asyncio.run_coroutine_threadsafe` carry it too (the loop runs them in a copy of the
    caller's context).
    """
    _correlation_id.set(cid)


def current_correlation_id() -> str | None:
    return _correlation_id.get()


@contextlib.contextmanager
def correlation_scope(cid: str | None) -> Iterator[str | None]:
    """Bind `cid` for a block and restore the previous id after (one message of many on a connection)."""
    token = _correlation_id.set(cid)
    try:
        yield cid
    finally:
        _correlation_id.reset(token)


def accepted_correlation_id(value: str | None) -> str:
    """A caller's correlation id when it is plain and short enough, else a new one."""
    if value and _SAFE_ID.fullmatch(value):
        return value
    return new_correlation_id()


def correlation_id_from(*parts: str) -> str:
    """An id built from protocol fields (e.g. HL7 sender and control id): unsafe characters become
    '_', empty parts are left out; a new id when nothing is left."""
    cleaned = [_UNSAFE_CHARS.sub("_", p).strip("_") for p in parts]
    joined = "-".join(p for p in cleaned if p)[:128]
    return joined or new_correlation_id()


# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged too.
# (uvicorn's `color_message` is its message again, with terminal colours.)
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, correlation_id, and `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        cid = _correlation_id.get()
        if cid:
            entry["correlation_id"] = cid
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and key not in entry and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The human-readable form (IMAGING_LOG_JSON=false), with the correlation id in brackets."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        cid = _correlation_id.get()
        return f"{text} [{cid}]" if cid else text


_configured = False


def configure_logging(settings: CommonSettings) -> None:
    """Configure the root logger once per process (the all-in-one run builds seven apps)."""
    global _configured
    if _configured:
        return
    _configured = True
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    logging.getLogger("aio_pika").setLevel(logging.WARNING)


M = TypeVar("M", Counter, Gauge, Histogram)


def registered(kind: type[M], name: str, doc: str, labels: list[str], registry: CollectorRegistry | None,
               **options: Any) -> M:
    """A metric on the service's registry (its /metrics), or the one already there under that name
    (a service app started twice, several listeners of one service). No registry: a private one,
    so library code works unexported in tests and tools."""
    registry = registry if registry is not None else CollectorRegistry()
    existing: Any = getattr(registry, "_names_to_collectors", {}).get(name)
    if isinstance(existing, kind):
        return existing
    return kind(name, doc, labels, registry=registry, **options)
