"""FilmStore on a local (or mounted) directory, under $IMAGING_DATA_DIR/print by default."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from print_scp.domain.storage import ObjectNotFound


class DirectoryStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:  # keys come from our own code, but never leave the root
            raise ValueError(f"key outside the store: {key!r}")
        return path

    def _put(self, key: str, data: bytes) -> None:
        self.put_parts_blocking(key, [data], "")

    def put_parts_blocking(self, key: str, parts: Sequence[bytes | memoryview], content_type: str) -> None:
        """The parts written with one writev (no joined copy of an 8 MB image), fsynced, renamed into place."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        try:
            try:
                views = [memoryview(p).cast("B") for p in parts]
                while views:
                    written = os.writev(fd, views)
                    while views and written >= len(views[0]):
                        written -= len(views.pop(0))
                    if views:
                        views[0] = views[0][written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)  # atomic on POSIX: readers see the old or the new file
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def _get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    def _delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass

    def _keys_older_than(self, prefix: str, before: datetime) -> list[str]:
        # Temporary files of a write a crash cut (.tmp-*) are listed too: they are old objects as well.
        base, cutoff = self.root / prefix, before.timestamp()
        return [p.relative_to(self.root).as_posix() for p in (base.rglob("*") if base.is_dir() else [])
                if p.is_file() and p.stat().st_mtime < cutoff]

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._put, key, data)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._get, key)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._delete, key)

    async def keys_older_than(self, prefix: str, before: datetime) -> list[str]:
        return await asyncio.to_thread(self._keys_older_than, prefix, before)
