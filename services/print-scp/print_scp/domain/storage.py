"""Where films are kept: an object store addressed by keys like `films/2026/11/23/<id>.png`.

Writes are atomic: a reader sees the whole object or none. The directory store (default,
adapters/storage_fs.py) writes a temporary file, fsyncs it and renames it into place; the
S3-compatible store (adapters/s3_store.py) PUTs whole objects in one request, which S3 makes
visible atomically, with a Content-MD5 the server checks before it keeps anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol


class ObjectNotFound(KeyError):
    """No object under that key."""


class StoreMisconfigured(RuntimeError):
    """The configured store cannot be used (missing bucket, unreachable endpoint, refused credentials).

    Raised at startup, with a message naming the setting to fix, so a service never runs
    accepting prints it cannot keep.
    """


class FilmStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def put_parts_blocking(self, key: str, parts: Sequence[bytes | memoryview], content_type: str) -> None:
        """`put` of the parts one after the other, blocking, from any thread (the print SCP's spool writer)."""
        ...

    async def get(self, key: str) -> bytes: ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None: ...

    async def keys_older_than(self, prefix: str, before: datetime) -> list[str]:
        """Keys under `prefix` last written before `before` (the spool's sweep of what a crash left)."""
        ...
