"""How much image data the print SCP holds in memory: per data set, per association, and in all.

Image boxes stay in memory from their N-SET until the film is printed and deleted (and the bytes of
an N-SET are in memory while they arrive, before any handler sees them). Without limits one modality
(or anyone who can connect) could send 64 boxes of 200 MB and take the process down for every other
modality. So:

- a data set arriving over IMAGING_PRINT_MAX_IMAGE_BYTES, or while the data sets arriving on all
  associations exceed IMAGING_PRINT_MAX_MEMORY_BYTES, aborts its association (A-ABORT: nothing can be
  answered before the whole request is in);
- an image box whose N-SET would take its association's held images over
  IMAGING_PRINT_MAX_ASSOCIATION_BYTES, or all associations' over IMAGING_PRINT_MAX_MEMORY_BYTES, is
  refused with 0x0213 (resource limitation), and the modality may print what it has and go on.
So images in memory stay under twice IMAGING_PRINT_MAX_MEMORY_BYTES (held, and arriving).
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class MemoryBudget:
    def __init__(self, *, max_image: int, max_association: int, max_total: int,
                 held: Callable[[int | None], int]) -> None:
        """`held(key)`: the bytes of images one association holds (None: all of them)."""
        self.max_image, self.max_association, self.max_total = max_image, max_association, max_total
        self._held = held
        self._arriving: dict[int, int] = {}
        self._lock = threading.Lock()

    def arriving(self, key: int, n: int) -> str | None:
        """`n` more bytes of the data set association `key` is receiving; the reason to abort, or None."""
        with self._lock:
            now = self._arriving.get(key, 0) + n
            self._arriving[key] = now
            total = sum(self._arriving.values())
        if now > self.max_image:
            return f"a data set of over {self.max_image} bytes (IMAGING_PRINT_MAX_IMAGE_BYTES)"
        if total > self.max_total:
            return f"data sets arriving at once exceed {self.max_total} bytes (IMAGING_PRINT_MAX_MEMORY_BYTES)"
        return None

    def arrived(self, key: int) -> None:
        """The data set is complete (its handler holds it from now on), or the association ended."""
        with self._lock:
            self._arriving.pop(key, None)

    def refuse_to_hold(self, key: int, n: int, replacing: int = 0) -> str | None:
        """The reason an image box of `n` bytes may not be kept (it replaces `replacing` bytes), or None."""
        # Short: a DIMSE Error Comment holds 64 characters (the setting names are in the module's docstring).
        if self._held(key) - replacing + n > self.max_association:
            return f"over the association's image budget ({self.max_association} B)"
        if self._held(None) - replacing + n > self.max_total:
            return f"over the print SCP's image budget ({self.max_total} B)"
        return None
