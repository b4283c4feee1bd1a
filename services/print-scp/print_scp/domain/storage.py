"""Where films are kept: an object store addressed by keys like `films/2026/11/23/<id>.png`.

Writes are atomic: a reader sees the whole object or none. The directory store (default) writes
a temporary file, fsyncs it and renames it into place; an S3-compatible store would PUT whole
objects, which S3 makes visible atomically.
"""

from __future__ import annotations

from typing import Protocol


class ObjectNotFound(KeyError):
    """No object under that key."""


class FilmStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def get(self, key: str) -> bytes: ...

    async def delete(self, key: str) -> None: ...
