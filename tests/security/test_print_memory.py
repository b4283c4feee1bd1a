"""The print SCP bounds the image data it holds in memory (issue 18 item 8): a data set over the
per-image limit aborts its association before it is all in; an image box that would take its
association, or all associations together, over their limit is refused with 0x0213 and the rest of
the job goes on; what a printed and deleted film held counts no more. Real DICOM over TCP (pynetdicom)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from imaging_testing import free_port, http_server
from imaging_testing import print_kit as tk
from print_scp.app import SERVICE
from print_scp.settings import Settings
from pydicom.uid import generate_uid
from pynetdicom.dul import DULServiceProvider

MB = 1024 * 1024
IMAGE = tk.to_item(tk.anatomy(1024, 3), bits=12)  # 2 MB of pixel data per N-SET


@pytest.fixture(scope="module")
async def port(settings_for: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[int]:
    from imaging_common.service import create_service_app

    settings = settings_for(Settings, print_host="127.0.0.1", print_port=free_port(), db_pool_max=3,
                            data_dir=tmp_path_factory.mktemp("print-memory"), print_max_image_bytes=3 * MB,
                            print_max_association_bytes=5 * MB, print_max_memory_bytes=7 * MB)
    async with http_server(create_service_app(SERVICE, settings)):
        yield settings.print_port


def _film(assoc: Any, fmt: str, session: str | None = None) -> tuple[str, Any]:
    """A film box (in a new film session unless `session` is given)."""
    if session is None:
        session = generate_uid()
        assert assoc.send_n_create(tk.session_ds(), tk.FILM_SESSION, session, meta_uid=tk.GRAY_META)[0].Status == 0
        assoc.session_uid = session
    box_uid = generate_uid()
    st, box = assoc.send_n_create(tk.film_box_ds(session, fmt), tk.FILM_BOX, box_uid, meta_uid=tk.GRAY_META)
    assert st.Status == 0
    return box_uid, box


def _set(assoc: Any, box: Any, position: int, item: Any = IMAGE) -> tuple[int, str]:
    ref = box.ReferencedImageBoxSequence[position - 1]
    st, _ = assoc.send_n_set(tk.image_box_ds(position, item), tk.GRAY_BOX, ref.ReferencedSOPInstanceUID,
                             meta_uid=tk.GRAY_META)
    return st.get("Status"), str(st.get("ErrorComment", ""))  # no Status: no answer (aborted)


def _association(port: int) -> Any:
    assoc = tk.print_ae().associate("127.0.0.1", port, ae_title="PRINT_SCP")
    assert assoc.is_established
    return assoc


def _per_association(port: int) -> list[Any]:
    assoc = _association(port)
    try:
        box_uid, box = _film(assoc, "STANDARD\\2,2")
        out = [_set(assoc, box, 1)[0], _set(assoc, box, 2)[0], _set(assoc, box, 3)]  # 2 + 2 + 2 MB > 5 MB
        out.append(_set(assoc, box, 2)[0])  # the same box again replaces its image: still 4 MB
        out.append(assoc.send_n_action(None, 1, tk.FILM_BOX, box_uid, meta_uid=tk.GRAY_META)[0].Status)
        assoc.send_n_delete(tk.FILM_BOX, box_uid, meta_uid=tk.GRAY_META)
        _, again = _film(assoc, "STANDARD\\2,2", assoc.session_uid)  # the printed film's images were let go
        out += [_set(assoc, again, 1)[0], _set(assoc, again, 2)[0]]
        return out
    finally:
        assoc.release()


async def test_an_association_holds_no_more_than_its_budget(port: int) -> None:
    first, second, (third, comment), replaced, printed, *after = await asyncio.to_thread(_per_association, port)
    assert (first, second) == (0, 0) and replaced == 0 and printed == 0 and after == [0, 0]
    assert third == 0x0213 and "association's image budget" in comment


def _two_associations(port: int) -> list[Any]:
    a, b = _association(port), _association(port)
    try:
        _, box_a = _film(a, "STANDARD\\2,2")
        _, box_b = _film(b, "STANDARD\\2,2")
        out = [_set(a, box_a, 1)[0], _set(a, box_a, 2)[0], _set(b, box_b, 1)[0]]  # 6 MB in all
        out.append(_set(b, box_b, 2))  # 8 MB > 7 MB in all, though b holds only 2 MB
        return out
    finally:
        a.release()
        b.release()


async def test_all_associations_together_hold_no_more_than_the_process_budget(port: int) -> None:
    *held, (refused, comment) = await asyncio.to_thread(_two_associations, port)
    assert held == [0, 0, 0] and refused == 0x0213 and "print SCP's image budget" in comment


def _too_big(port: int) -> tuple[Any, bool]:
    big = tk.to_item(tk.anatomy(2048, 3), bits=12)  # 8 MB: over the 3 MB a data set may have
    assoc = _association(port)
    _, box = _film(assoc, "STANDARD\\1,1")
    status, _ = _set(assoc, box, 1, big)
    for _ in range(40):  # the requestor notices the ended association shortly after
        if not assoc.is_established:
            break
        time.sleep(0.05)
    return status, assoc.is_established


async def test_a_data_set_over_the_image_limit_aborts_its_association(port: int) -> None:
    status, alive = await asyncio.to_thread(_too_big, port)
    assert status is None and not alive  # no answer: the association was ended while the data came in
    assert await asyncio.to_thread(_per_association, port)  # the SCP serves the next one as before
    # ... and the aborted association's threads are gone: its DUL thread once waited for itself to stop,
    # forever, and (not a daemon) kept the process from exiting
    deadline = time.monotonic() + 10
    while _upper_layers() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert _upper_layers() == []


def _upper_layers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if isinstance(t, DULServiceProvider) and t.is_alive()]
