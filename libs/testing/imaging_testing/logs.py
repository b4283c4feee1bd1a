"""The platform's log lines as a test reads them: the root logger's records formatted as the JSON lines a
service writes (imaging_common.observability.JsonFormatter)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

from imaging_common.observability import JsonFormatter


class JsonLines(logging.Handler):
    """Records formatted when emitted, so in the task or thread that logged them (with the correlation id
    bound there); `lines` holds them parsed."""

    def __init__(self, level: int = logging.DEBUG) -> None:
        super().__init__(level)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def with_id(self, cid: str) -> list[dict[str, Any]]:
        """The lines logged under this correlation id."""
        return [line for line in self.lines if line.get("correlation_id") == cid]


@contextlib.contextmanager
def json_lines(level: int = logging.DEBUG) -> Iterator[JsonLines]:
    """The root logger at INFO with a JsonLines handler (of `level`) while inside; both as before after."""
    handler = JsonLines(level)
    root = logging.getLogger()
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)
