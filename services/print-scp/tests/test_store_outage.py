"""A film store that fails for a moment (S3 endpoint restarting, NFS hiccup) loses no film."""

from __future__ import annotations

import asyncio
from typing import Any

from imaging_testing import print_kit as tk


class FlakyGets:
    """Wraps the real store; its next `failures` reads raise as a dropped connection would."""

    def __init__(self, store: Any, failures: int) -> None:
        self.store, self.failures, self.failed = store, failures, 0

    async def get(self, key: str) -> bytes:
        if self.failed < self.failures:
            self.failed += 1
            raise ConnectionError("store unreachable")
        return await self.store.get(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def test_store_outage_while_rendering_leaves_the_film_spooled_then_stores_it(print_app) -> None:
    pipeline = print_app.runtime.pipeline
    real = pipeline.store
    flaky = FlakyGets(real, failures=2)
    pipeline.store = flaky
    try:
        study = await print_app.add_study()

        def run() -> dict:
            assoc = tk.print_ae().associate("127.0.0.1", print_app.port, ae_title="PRINT_SCP")
            try:
                return tk.print_film(assoc, [tk.to_item(tk.anatomy(128, 1), bits=12)], study_uid=study["study_uid"])
            finally:
                assoc.release()

        out = await asyncio.to_thread(run)
        assert out["print"] == 0
        [film] = await print_app.wait_films("film_box_uid = $1", out["box_uid"], timeout=30)
        assert flaky.failed == 2  # the reads did fail, and the film waited for the store
        assert film["status"] == "stored" and film["match_status"] == "matched"
    finally:
        pipeline.store = real
