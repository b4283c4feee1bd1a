"""The print SCP's DICOM conformance statement (docs/conformance/print-scp.md) held against the SCP.

Every table marked `<!-- table: name -->` in the statement is read here and compared with what the
running SCP (the `print_app` fixture) negotiates and answers over real DICOM: the presentation contexts
and transfer syntaxes it accepts, the DIMSE services each SOP class has, every enumerated value and
range of the attribute tables (each accepted, one outside refused with the listed status), the
attributes N-SET may change, what N-GET of the Printer and of a Print Job returns, the Printer's
N-EVENT-REPORT, the character sets, and every status of the status table, each provoked by a request.
DCMTK's echoscu checks the association policy from the outside.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from imaging_testing import print_kit as tk
from print_scp.domain import statuses as st
from print_scp.domain.print_session import PrintAssociation
from print_scp.domain.statuses import PrintFailure
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.dimse_primitives import N_CREATE

STATEMENT = Path(__file__).resolve().parents[3] / "docs" / "conformance" / "print-scp.md"
PRINT_JOB = "1.2.840.10008.5.1.1.14"
ANNOTATION = "1.2.840.10008.5.1.1.15"
# Proposed beside the statement's lists, to show that what is not listed is refused: every print SOP class
# of PS3.6 (retired ones too), whether the statement names it or not, and two of other services.
PRINT_FAMILY = ["1.2.840.10008.5.1.1." + n for n in (
    "1", "2", "4", "4.1", "4.2", "9", "9.1", "14", "15", "16", "16.376", "18", "18.1", "22", "23", "24", "24.1",
    "26", "27", "29", "30", "31", "32")]
UNLISTED_ABSTRACT = ["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.31"]  # CT Image Storage, MWL FIND
UNLISTED_TRANSFER = ["1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.50"]  # Deflated, JPEG Baseline
# Refused examples where "one more than the largest value" or "BOGUS" is not what a modality would get wrong.
REFUSED_EXAMPLES: dict[str, list[Any]] = {"ImageDisplayFormat": ["BOGUS", "STANDARD\\8,9", "SLIDE", "STANDARD\\0,2"],
                                          "PixelAspectRatio": ["0\\1"]}
STATUS = re.compile(r"0x[0-9A-F]{4}")


# ---- the statement ---------------------------------------------------------------------------------

def _tables() -> dict[str, list[dict[str, str]]]:
    """Each marked table as a list of rows, {column header: cell text}."""
    lines = STATEMENT.read_text(encoding="utf-8").splitlines()
    out: dict[str, list[dict[str, str]]] = {}
    for i, line in enumerate(lines):
        m = re.fullmatch(r"<!-- table: ([a-z0-9-]+) -->", line.strip())
        if not m:
            continue
        body = []
        for row in lines[i + 1:]:
            if not row.startswith("|"):
                break
            body.append([c.strip() for c in row.strip().strip("|").split("|")])
        header, rows = body[0], body[2:]
        assert all(len(r) == len(header) for r in rows), f"table {m.group(1)}: ragged rows"
        out[m.group(1)] = [dict(zip(header, r, strict=True)) for r in rows]
    return out


TABLES = _tables()


def table(name: str) -> list[dict[str, str]]:
    assert name in TABLES, f"the statement has no table {name!r}"
    return TABLES[name]


def uids(name: str, column: str = "UID") -> list[str]:
    return [row[column] for row in table(name)]


def tag_of(cell: str) -> int:
    g, e = re.fullmatch(r"\(([0-9A-F]{4}),([0-9A-F]{4})\)", cell).groups()  # type: ignore[union-attr]
    return int(g + e, 16)


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def statuses_in(cell: str) -> list[int]:
    return [int(s, 16) for s in STATUS.findall(cell)]


def value_cases(row: dict[str, str]) -> tuple[str, bool, list[Any], list[Any]] | None:
    """(keyword, in the image item, values that must be accepted, values that must be refused) of an
    attribute table row whose Values are enumerated (`...`) or a range (lo..hi); None for free values."""
    if not row.get("Otherwise"):
        return None
    keyword = keyword_for_tag(tag_of(row["Tag"]))
    vr = dictionary_VR(tag_of(row["Tag"]))
    on_item = row["Attribute Name"].startswith(">")
    values = [v.replace("_i", "_2") if v.endswith("_i") else v for v in ticked(row["Values"])]
    numeric = vr in ("US", "IS", "SS", "UL")
    if values:
        accepted: list[Any] = [int(v) for v in values] if numeric and all(v.isdigit() for v in values) else values
        if accepted and all(isinstance(v, int) for v in accepted):
            refused: list[Any] = [max(accepted) + 1]
        else:
            refused = ["BOGUS"]
    else:
        m = re.match(r"(\d+)\.\.(\d+)", row["Values"])
        if m is None:
            return None
        lo, hi = int(m.group(1)), int(m.group(2))
        accepted = [lo, (lo + hi) // 2, hi]
        refused = [v for v in (lo - 1, hi + 1) if not (vr == "US" and not 0 <= v <= 0xFFFF)]
    refused = REFUSED_EXAMPLES.get(keyword, refused)
    return keyword, on_item, accepted, refused


# ---- talking to the SCP ------------------------------------------------------------------------------

class Modality:
    """One association with the SCP (in a worker thread), with the helpers the checks below share."""

    def __init__(self, port: int, *, ae_title: str = "CONFORMANCE", handlers: list | None = None) -> None:
        ae = tk.print_ae((PRINT_JOB, ANNOTATION, tk.PRINTER_CLASS), ae_title=ae_title)
        self.assoc = ae.associate("127.0.0.1", port, ae_title="PRINT_SCP", evt_handlers=handlers or [])
        assert self.assoc.is_established
        self.session_uid: str | None = None
        self.item = tk.to_item(tk.anatomy(16, 1), bits=12)

    def close(self) -> None:
        if self.assoc.is_established:
            self.assoc.release()

    # DIMSE-N, each returning the status code (and the response data set where there is one)
    def create(self, ds: Dataset, sop_class: str, uid: str | None = None, meta: str = tk.GRAY_META) -> tuple[int, Any]:
        status, rsp = self.assoc.send_n_create(ds, sop_class, uid or generate_uid(), meta_uid=meta)
        return int(status.Status), rsp

    def set(self, ds: Dataset, sop_class: str, uid: str, meta: str = tk.GRAY_META) -> int:
        return int(self.assoc.send_n_set(ds, sop_class, uid, meta_uid=meta)[0].Status)

    def get(self, tags: list[int], sop_class: str, uid: str, meta: str = tk.GRAY_META) -> tuple[int, Any]:
        status, rsp = self.assoc.send_n_get(tags, sop_class, uid, meta_uid=meta)
        return int(status.Status), rsp

    def action(self, sop_class: str, uid: str, action: int = 1, meta: str = tk.GRAY_META) -> tuple[int, Any]:
        status, rsp = self.assoc.send_n_action(None, action, sop_class, uid, meta_uid=meta)
        return int(status.Status), rsp

    def delete(self, sop_class: str, uid: str, meta: str = tk.GRAY_META) -> int:
        return int(self.assoc.send_n_delete(sop_class, uid, meta_uid=meta).Status)

    # print objects
    def session(self) -> str:
        if self.session_uid is None:
            self.session_uid = generate_uid()
            assert self.create(tk.session_ds(), tk.FILM_SESSION, self.session_uid)[0] == 0
        return self.session_uid

    def film_box(self, fmt: str = "STANDARD\\1,1", **attrs: Any) -> tuple[str, Dataset]:
        uid = generate_uid()
        status, rsp = self.create(tk.film_box_ds(self.session(), fmt, **attrs), tk.FILM_BOX, uid)
        assert status in (0, st.WARN_DENSITY_OUT_OF_RANGE), hex(status)
        return uid, rsp

    def image_box(self, fmt: str = "STANDARD\\1,1") -> tuple[str, str]:
        """(film box UID, its first image box UID)."""
        box, rsp = self.film_box(fmt)
        return box, rsp.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID

    def fill(self, image_box: str, position: int = 1) -> None:
        assert self.set(tk.image_box_ds(position, self.item), tk.GRAY_BOX, image_box) == 0

    def lut(self) -> str:
        ds = Dataset()
        ds.PresentationLUTShape = "IDENTITY"
        uid = generate_uid()
        assert self.create(ds, tk.PLUT, uid, meta=tk.PLUT)[0] == 0
        return uid

    def raw_create(self, sop_class: str, data: bytes, meta: str = tk.GRAY_META) -> int:
        """An N-CREATE whose attribute list is `data` as it is (pynetdicom would not send a bad one)."""
        req = N_CREATE()
        req.MessageID = 91
        req.AffectedSOPClassUID = sop_class
        req.AffectedSOPInstanceUID = generate_uid()
        req.AttributeList = BytesIO(data)
        cx = next(c for c in self.assoc.accepted_contexts if c.abstract_syntax == meta)
        self.assoc._reactor_checkpoint.clear()  # as pynetdicom's send_*() do: keep the reactor off our reply
        while not self.assoc._is_paused:
            time.sleep(0.001)
        try:
            self.assoc.dimse.send_msg(req, cx.context_id)
            _, rsp = self.assoc.dimse.get_msg(block=True)
        finally:
            self.assoc._reactor_checkpoint.set()
        return int(rsp.Status)


@contextmanager
def modality(port: int, **kwargs: Any) -> Iterator[Modality]:
    m = Modality(port, **kwargs)
    try:
        yield m
    finally:
        m.close()


def _ref(sop_class: str, uid: str) -> Dataset:
    ds = Dataset()
    ds.ReferencedSOPClassUID, ds.ReferencedSOPInstanceUID = sop_class, uid
    return ds


def _server_state(print_app: Any, calling_ae: str) -> PrintAssociation:
    """The SCP's state of our association (found by its calling AE title)."""
    scp = print_app.runtime.scp
    with scp._lock:
        [state] = [s for s in scp._states.values() if s.calling_ae == calling_ae]
    return state


# ---- presentation contexts, transfer syntaxes, association -----------------------------------------

async def test_exactly_the_listed_abstract_and_transfer_syntaxes_are_accepted(print_app) -> None:
    listed_as = uids("presentation-contexts")
    listed_ts = uids("transfer-syntaxes")
    unlisted_as = [a for a in dict.fromkeys(uids("not-supported") + PRINT_FAMILY + UNLISTED_ABSTRACT)
                   if a not in listed_as]
    proposals = [(a, t) for a in listed_as for t in listed_ts + UNLISTED_TRANSFER]
    proposals += [(a, t) for a in unlisted_as for t in listed_ts]
    assert len(proposals) <= 128

    def run() -> tuple[set, dict, Any, list]:
        ae = AE(ae_title="CONFORMANCE")
        for a, t in proposals:  # one transfer syntax per context: each pair answered on its own
            ae.add_requested_context(a, [t])
        assoc = ae.associate("127.0.0.1", print_app.port, ae_title="PRINT_SCP")
        assert assoc.is_established
        try:
            accepted = {(str(cx.abstract_syntax), str(cx.transfer_syntax[0])) for cx in assoc.accepted_contexts}
            rejected = {(str(cx.abstract_syntax), str(cx.transfer_syntax[0])): cx.result
                        for cx in assoc.rejected_contexts}
            acceptor = assoc.acceptor
        finally:
            assoc.release()
        # Several transfer syntaxes in one context: the table's first one proposed, whatever the SCU's order.
        chosen = []
        for order in (UNLISTED_TRANSFER + listed_ts[::-1], UNLISTED_TRANSFER + listed_ts[1:][::-1]):
            ae = AE(ae_title="CONFORMANCE")
            ae.add_requested_context(tk.GRAY_META, order)
            assoc = ae.associate("127.0.0.1", print_app.port, ae_title="PRINT_SCP")
            chosen.append(str(assoc.accepted_contexts[0].transfer_syntax[0]))
            assoc.release()
        return accepted, rejected, acceptor, chosen

    accepted, rejected, acceptor, chosen = await asyncio.to_thread(run)
    assert chosen == [listed_ts[0], listed_ts[1]]
    assert accepted == {(a, t) for a in listed_as for t in listed_ts}
    assert all(rejected[(a, t)] == 3 for a in unlisted_as for t in listed_ts)  # abstract syntax not supported
    assert all(rejected[(a, t)] == 4 for a in listed_as for t in UNLISTED_TRANSFER)  # transfer syntax
    params = {row["Parameter"]: row["Value"] for row in table("association-parameters")}
    assert str(acceptor.primitive.application_context_name) == params["Application Context Name"]
    assert acceptor.ae_title.strip() == params["Called AE title"] == print_app.settings.print_ae_title
    assert acceptor.maximum_length == int(params["Maximum PDU length received"])
    assert acceptor.implementation_class_uid == params["Implementation Class UID"]
    assert acceptor.implementation_version_name == params["Implementation Version Name"]


async def test_association_rejections(print_app) -> None:
    rows = {row["Result / Source / Reason"]: row for row in table("association-rejections")}
    # 1/1/3 (unknown peer, IMAGING_PRINT_PEERS=enforce) is answered by a listener in that mode:
    # tests/security/test_print_peers_tls.py::test_an_unknown_modality_cannot_print.
    assert set(rows) == {"1 / 1 / 3", "1 / 1 / 7", "2 / 3 / 2"}
    limit = int({r["Parameter"]: r["Value"] for r in table("association-parameters")}[
        "Maximum number of simultaneous associations"])

    def rsd(assoc: Any) -> str:
        p = assoc.acceptor.primitive
        return f"{p.result} / {p.result_source} / {p.diagnostic}"

    def run() -> tuple[str, int, str]:
        ae = AE(ae_title="CONFORMANCE")
        ae.add_requested_context(tk.GRAY_META)
        wrong = ae.associate("127.0.0.1", print_app.port, ae_title="NOT_THE_PRINTER")
        assert wrong.is_rejected
        held: list[Any] = []
        try:
            for _ in range(limit + 5):
                assoc = ae.associate("127.0.0.1", print_app.port, ae_title="PRINT_SCP")
                if not assoc.is_established:
                    return rsd(wrong), len(held), rsd(assoc)
                held.append(assoc)
            return rsd(wrong), len(held), "none"
        finally:
            for assoc in held:
                assoc.release()

    called, opened, over = await asyncio.to_thread(run)
    assert called == "1 / 1 / 7"
    # Associations of earlier tests may still be winding down in the SCP: they count as well.
    assert limit - 3 <= opened <= limit and over == "2 / 3 / 2"


# ---- DIMSE services per SOP class ---------------------------------------------------------------------

_META_OF = {tk.FILM_SESSION: tk.GRAY_META, tk.FILM_BOX: tk.GRAY_META, tk.GRAY_BOX: tk.GRAY_META,
            tk.PRINTER_CLASS: tk.GRAY_META, tk.COLOR_BOX: tk.COLOR_META}


async def test_each_sop_class_has_exactly_the_listed_dimse_services(print_app) -> None:
    """A listed service on an unknown instance: 0x0112 (it exists, the instance does not); an unlisted
    one: 0x0211. N-CREATE of a listed class is checked by the attribute tables below."""
    services = ("N-CREATE", "N-SET", "N-GET", "N-ACTION", "N-DELETE")

    def run() -> list[tuple[str, str, int, int]]:
        out = []
        with modality(print_app.port) as m:
            for row in table("operations"):
                sop_class, listed = row["UID"], row["DIMSE services"]
                meta = _META_OF.get(sop_class, sop_class)
                for service in services:
                    if service in listed and service == "N-CREATE":
                        continue
                    uid = generate_uid()
                    ds = Dataset()
                    ds.ImageBoxPosition = 1
                    status = {"N-CREATE": lambda: m.create(ds, sop_class, uid, meta)[0],  # noqa: B023
                              "N-SET": lambda: m.set(ds, sop_class, uid, meta),  # noqa: B023
                              "N-GET": lambda: m.get([0x21100010], sop_class, uid, meta)[0],  # noqa: B023
                              "N-ACTION": lambda: m.action(sop_class, uid, 1, meta)[0],  # noqa: B023
                              "N-DELETE": lambda: m.delete(sop_class, uid, meta)}[service]()  # noqa: B023
                    expected = st.NO_SUCH_SOP_INSTANCE if service in listed else st.UNRECOGNIZED_OPERATION
                    out.append((row["SOP Class"], service, status, expected))
        return out

    results = await asyncio.to_thread(run)
    assert [r for r in results if r[2] != r[3]] == []
    assert len(results) == 8 * 5 - 3  # three classes have an N-CREATE


async def test_a_sop_class_is_usable_only_on_its_own_context_or_a_meta_class_containing_it(print_app) -> None:
    """Each listed SOP class on each accepted context: on its own or a containing Meta SOP class's, a
    request on an unknown instance gets 0x0112 (the class is served there); on any other, 0x0118."""
    classes = {row["SOP Class"]: row for row in table("operations")}

    def run() -> list[str]:
        ae = AE(ae_title="CONFORMANCE")
        for uid in uids("presentation-contexts"):
            ae.add_requested_context(uid)
        assoc = ae.associate("127.0.0.1", print_app.port, ae_title="PRINT_SCP")
        assert assoc.is_established
        wrong = []
        try:
            for cx in table("presentation-contexts"):
                contains = {c.strip() for c in cx["Contains"].split(",")}
                for name, row in classes.items():
                    sop_class, meta = row["UID"], cx["UID"]
                    uid = generate_uid()
                    services = row["DIMSE services"]
                    if "N-SET" in services:
                        ds = Dataset()
                        ds.ImageBoxPosition = 1
                        status = assoc.send_n_set(ds, sop_class, uid, meta_uid=meta)[0].Status
                    elif "N-GET" in services:
                        status = assoc.send_n_get([0x21100010], sop_class, uid, meta_uid=meta)[0].Status
                    else:
                        status = assoc.send_n_delete(sop_class, uid, meta_uid=meta).Status
                    served = sop_class == meta or name in contains
                    expected = st.NO_SUCH_SOP_INSTANCE if served else st.NO_SUCH_SOP_CLASS
                    if status != expected:
                        wrong.append(f"{name} on {cx['Abstract Syntax']}: 0x{status:04X}, expected 0x{expected:04X}")
        finally:
            assoc.release()
        return wrong

    assert await asyncio.to_thread(run) == []


# ---- attribute tables: values, ranges, settable attributes ------------------------------------------

def _set_value(ds: Dataset, keyword: str, value: Any) -> None:
    setattr(ds, keyword, value)
    # Densities are checked as a pair (Min below Max): the other one is sent at the far end of its range.
    if keyword == "MinDensity" and "MaxDensity" not in ds:
        ds.MaxDensity = 10000
    if keyword == "MaxDensity" and "MinDensity" not in ds:
        ds.MinDensity = 0


def _image_item(m: Modality, keyword: str, value: Any) -> Dataset:
    if keyword in ("Rows", "Columns"):
        n = min(max(int(value), 1), 8193)
        item = tk.to_item(np.zeros((n, 16) if keyword == "Rows" else (16, n), dtype=np.float32), bits=12)
    else:
        item = tk.to_item(tk.anatomy(16, 1), bits=12)
    setattr(item, keyword, value)
    return item


def _value_checker(m: Modality, name: str) -> Callable[[str, bool, Any], int]:
    """For attribute table `name`: a function sending one value of one attribute, returning the status."""
    if name == "film-session-n-create":
        def check(keyword: str, on_item: bool, value: Any) -> int:
            ds = tk.session_ds()
            _set_value(ds, keyword, value)
            uid = generate_uid()
            status, _ = m.create(ds, tk.FILM_SESSION, uid)
            if status in (0, st.WARN_MEMORY_ALLOCATION_NOT_SUPPORTED):
                assert m.delete(tk.FILM_SESSION, uid) == 0
            return status
        return check
    if name == "film-session-n-set":
        def check(keyword: str, on_item: bool, value: Any) -> int:
            ds = Dataset()
            _set_value(ds, keyword, value)
            return m.set(ds, tk.FILM_SESSION, m.session())
        return check
    if name == "film-box-n-create":
        def check(keyword: str, on_item: bool, value: Any) -> int:
            ds = tk.film_box_ds(m.session())
            _set_value(ds, keyword, value)
            return m.create(ds, tk.FILM_BOX)[0]
        return check
    if name == "film-box-n-set":
        box, _ = m.film_box()

        def check(keyword: str, on_item: bool, value: Any) -> int:
            ds = Dataset()
            _set_value(ds, keyword, value)
            return m.set(ds, tk.FILM_BOX, box)
        return check
    if name == "image-box-n-set":
        _, image_box = m.image_box()

        def check(keyword: str, on_item: bool, value: Any) -> int:
            if on_item:
                ds = tk.image_box_ds(1, _image_item(m, keyword, value))
            else:
                ds = tk.image_box_ds(1, m.item)
                setattr(ds, keyword, value)
            return m.set(ds, tk.GRAY_BOX, image_box)
        return check
    if name == "presentation-lut-n-create":
        def check(keyword: str, on_item: bool, value: Any) -> int:
            ds = Dataset()
            setattr(ds, keyword, value)
            return m.create(ds, tk.PLUT, meta=tk.PLUT)[0]
        return check
    if name == "annotation-box-n-set":
        _, rsp = m.film_box(AnnotationDisplayFormatID="LABEL")
        boxes = [r.ReferencedSOPInstanceUID for r in rsp.ReferencedBasicAnnotationBoxSequence]

        def check(keyword: str, on_item: bool, value: Any) -> int:
            ds = Dataset()
            setattr(ds, keyword, value)
            ds.TextString = "PID 123"
            target = boxes[value - 1] if keyword == "AnnotationPosition" and 1 <= value <= len(boxes) else boxes[0]
            return m.set(ds, ANNOTATION, target, meta=ANNOTATION)
        return check
    raise AssertionError(f"no request builder for table {name}")


ATTRIBUTE_TABLES = ["film-session-n-create", "film-session-n-set", "film-box-n-create", "film-box-n-set",
                    "image-box-n-set", "presentation-lut-n-create", "annotation-box-n-set"]


def _accepted(status: int) -> bool:
    return status == 0 or 0xB000 <= status <= 0xBFFF


@pytest.mark.parametrize("name", ATTRIBUTE_TABLES)
async def test_every_listed_value_is_accepted_and_others_get_the_listed_status(print_app, name: str) -> None:
    cases = [(row, c) for row in table(name) if (c := value_cases(row)) is not None]
    assert cases, f"table {name} lists no enumerated values or ranges"

    def run() -> list[str]:
        wrong = []
        with modality(print_app.port) as m:
            check = _value_checker(m, name)
            for row, (keyword, on_item, accepted, refused) in cases:
                [otherwise] = statuses_in(row["Otherwise"])
                for value in accepted:
                    status = check(keyword, on_item, value)
                    if not _accepted(status):
                        wrong.append(f"{keyword}={value!r}: 0x{status:04X}, listed as accepted")
                for value in refused:
                    status = check(keyword, on_item, value)
                    if status != otherwise:
                        wrong.append(f"{keyword}={value!r}: 0x{status:04X}, listed 0x{otherwise:04X}")
            assert m.assoc.is_established
        return wrong

    assert await asyncio.to_thread(run) == []


def _valid_value(m: Modality, row: dict[str, str]) -> Any:
    """A value the SCP takes for the attribute of `row` (its first listed value, else one of its VR)."""
    cases = value_cases(row)
    if cases is not None:
        return cases[2][0]
    tag = tag_of(row["Tag"])
    keyword, vr = keyword_for_tag(tag), dictionary_VR(tag)
    if keyword == "SpecificCharacterSet":
        return "ISO_IR 192"
    if keyword == "ReferencedStudySequence":
        return [_ref("1.2.840.10008.3.1.2.3.1", generate_uid())]
    if keyword == "ReferencedPresentationLUTSequence":
        return [_ref(tk.PLUT, m.lut())]
    if keyword == "ReferencedFilmSessionSequence":
        return [_ref(tk.FILM_SESSION, m.session())]
    return {"UI": generate_uid(), "US": 100, "IS": "1"}.get(vr, "X")


@pytest.mark.parametrize(("n_set", "n_create", "sop_class"), [
    ("film-session-n-set", "film-session-n-create", tk.FILM_SESSION),
    ("film-box-n-set", "film-box-n-create", tk.FILM_BOX),
])
async def test_n_set_changes_the_listed_attributes_and_refuses_others(print_app, n_set: str, n_create: str,
                                                                      sop_class: str) -> None:
    settable = {keyword_for_tag(tag_of(row["Tag"])) for row in table(n_set)}
    fixed = [row for row in table(n_create) if keyword_for_tag(tag_of(row["Tag"])) not in settable]
    others = {"PatientName": "ZHANG^SAN", "ImageDisplayFormat": "STANDARD\\1,1"}  # of no print SOP class / another

    def run() -> list[str]:
        wrong = []
        with modality(print_app.port) as m:
            uid = m.session() if sop_class == tk.FILM_SESSION else m.film_box()[0]
            for row in table(n_set):
                ds = Dataset()
                _set_value(ds, keyword_for_tag(tag_of(row["Tag"])), _valid_value(m, row))
                if not _accepted(status := m.set(ds, sop_class, uid)):
                    wrong.append(f"{row['Attribute Name']}: 0x{status:04X}")
            refused = [(keyword_for_tag(tag_of(row["Tag"])), _valid_value(m, row)) for row in fixed]
            refused += [(k, v) for k, v in others.items() if k not in settable and k not in dict(refused)]
            for keyword, value in refused:
                ds = Dataset()
                setattr(ds, keyword, value)
                if (status := m.set(ds, sop_class, uid)) != st.NO_SUCH_ATTRIBUTE:
                    wrong.append(f"{keyword} (not settable): 0x{status:04X}")
        return wrong

    assert await asyncio.to_thread(run) == []


async def test_a_refusal_names_its_attribute_and_a_modalitys_own_event_report_is_answered(print_app) -> None:
    def run() -> tuple[int, list[int], int, float]:
        with modality(print_app.port) as m:
            ds = Dataset()
            ds.PatientName = "ZHANG^SAN"  # of no print SOP class
            status, _ = m.assoc.send_n_set(ds, tk.FILM_SESSION, m.session(), meta_uid=tk.GRAY_META)
            named = status.get("AttributeIdentifierList")
            named = [int(t) for t in (named if isinstance(named, list) else [named] if named is not None else [])]
            started = time.perf_counter()
            report = m.assoc.send_n_event_report(None, 1, tk.PRINTER_CLASS, tk.PRINTER_INSTANCE, meta_uid=tk.GRAY_META)
            return int(status.Status), named, int(report[0].get("Status", -1)), time.perf_counter() - started

    status, named, report, seconds = await asyncio.to_thread(run)
    assert (status, named) == (st.NO_SUCH_ATTRIBUTE, [0x00100010])
    assert report == st.UNRECOGNIZED_OPERATION and seconds < 10  # it went unanswered until the DIMSE timeout


# ---- N-GET, N-EVENT-REPORT ----------------------------------------------------------------------------

def _returned(name: str) -> dict[int, str]:
    return {tag_of(row["Tag"]): row["Value returned"] for row in table(name)}


def _check_returned(name: str, ds: Dataset) -> list[str]:
    listed = _returned(name)
    wrong = [f"{keyword_for_tag(t)} returned, not listed" for t in (int(e.tag) for e in ds) if t not in listed]
    for tag, value in listed.items():
        if tag not in ds:
            wrong.append(f"{keyword_for_tag(tag)} listed, not returned")
        elif ticked(value) and ticked(value)[0] != str(ds[tag].value):
            wrong.append(f"{keyword_for_tag(tag)} is {ds[tag].value!r}, listed {ticked(value)[0]!r}")
    return wrong


async def test_printer_n_get_returns_the_listed_attributes(print_app) -> None:
    listed = list(_returned("printer-n-get"))

    def run() -> tuple:
        with modality(print_app.port) as m:
            everything = m.get([], tk.PRINTER_CLASS, tk.PRINTER_INSTANCE)
            named = m.get(listed, tk.PRINTER_CLASS, tk.PRINTER_INSTANCE)
            two = m.get(listed[:2] + [0x00100010], tk.PRINTER_CLASS, tk.PRINTER_INSTANCE)  # + an unknown one
            alone = m.get(listed, tk.PRINTER_CLASS, tk.PRINTER_INSTANCE, meta=tk.PRINTER_CLASS)
            return everything, named, two, alone

    everything, named, two, alone = await asyncio.to_thread(run)
    for status, ds in (everything, named, alone):
        assert status == 0 and _check_returned("printer-n-get", ds) == []
    assert two[0] == 0 and [int(e.tag) for e in two[1]] == sorted(listed[:2])
    assert named[1].PrinterName == print_app.settings.print_printer_name


async def test_print_job_n_get_and_the_printer_event_report(print_app) -> None:
    reports: list[tuple[int, Dataset]] = []

    def on_report(event: Any) -> tuple[int, None]:
        reports.append((int(event.request.EventTypeID), event.event_information))
        return 0x0000, None

    def run() -> tuple:
        with modality(print_app.port, handlers=[(evt.EVT_N_EVENT_REPORT, on_report)]) as m:
            out = tk.print_film(m.assoc, [m.item])
            assert out["print"] == 0
            job = out["print_reply"].ReferencedPrintJobSequence[0].ReferencedSOPInstanceUID
            got = m.get([], PRINT_JOB, job, meta=PRINT_JOB)
            deadline = time.monotonic() + 5
            while not reports and time.monotonic() < deadline:  # the report follows the session's N-DELETE-RSP
                time.sleep(0.02)
            return got, out["box_uid"]

    (status, job), box_uid = await asyncio.to_thread(run)
    assert status == 0 and _check_returned("print-job-n-get", job) == []
    assert job.Originator == "CONFORMANCE" and job.PrinterName == print_app.settings.print_printer_name
    [row] = table("printer-n-event-report")
    [(event_type, info)] = reports
    assert event_type == int(row["Event Type ID"])
    assert sorted(int(e.tag) for e in info) == [tag_of(t) for t in re.findall(r"\([0-9A-F,]+\)",
                                                                              row["Event Information"])]
    await print_app.wait_films("film_box_uid = $1", box_uid)  # leave nothing rendering behind


# ---- statuses -------------------------------------------------------------------------------------------

def _provokers(print_app: Any) -> dict[int, Callable[[Modality], tuple[int, str]]]:
    """For each status: a request that gets it, and the operation (as the statement names it)."""
    port = print_app.port

    def b602(m: Modality) -> tuple[int, str]:
        _, image_box = m.image_box()
        m.fill(image_box)
        m.film_box()  # a second sheet without images
        return m.action(tk.FILM_SESSION, m.session())[0], "Film Session N-ACTION"

    def b603(m: Modality) -> tuple[int, str]:
        return m.action(tk.FILM_BOX, m.film_box("STANDARD\\2,2")[0])[0], "Film Box N-ACTION"

    def image_size(decimate_crop: str | None) -> Callable[[Modality], tuple[int, str]]:
        def run(m: Modality) -> tuple[int, str]:
            _, image_box = m.image_box()
            ds = tk.image_box_ds(1, m.item)
            ds.RequestedImageSize = "2000"  # mm: wider than any film
            if decimate_crop:
                ds.RequestedDecimateCropBehavior = decimate_crop
            return m.set(ds, tk.GRAY_BOX, image_box), "Image Box N-SET"
        return run

    def missing_position(m: Modality) -> tuple[int, str]:
        _, image_box = m.image_box()
        ds = tk.image_box_ds(1, m.item)
        del ds.ImageBoxPosition
        return m.set(ds, tk.GRAY_BOX, image_box), "Image Box N-SET"

    def color_on_gray(m: Modality) -> tuple[int, str]:
        _, image_box = m.image_box()
        ds = tk.image_box_ds(1, tk.color_item(tk.anatomy(16, 2)), color=True)
        return m.set(ds, tk.GRAY_BOX, image_box), "Image Box N-SET"

    def no_format(m: Modality) -> tuple[int, str]:
        ds = tk.film_box_ds(m.session())
        del ds.ImageDisplayFormat
        return m.create(ds, tk.FILM_BOX)[0], "Film Box N-CREATE"

    def duplicate(m: Modality) -> tuple[int, str]:
        uid = generate_uid()
        m.create(tk.film_box_ds(m.session()), tk.FILM_BOX, uid)
        return m.create(tk.film_box_ds(m.session()), tk.FILM_BOX, uid)[0], "Film Box N-CREATE"

    def not_stored(m: Modality) -> tuple[int, str]:
        # The film store or the database is down: the job cannot be made durable.
        pipeline = print_app.runtime.scp.pipeline

        async def refuse(jobs: Any, **_: Any) -> None:
            raise ConnectionError("database unavailable")

        box, image_box = m.image_box()
        m.fill(image_box)
        pipeline.accept = refuse
        try:
            return m.action(tk.FILM_BOX, box)[0], "Film Box N-ACTION"
        finally:
            del pipeline.accept  # the class's method again

    def queue_full(session_level: bool) -> Callable[[Modality], tuple[int, str]]:
        def run(m: Modality) -> tuple[int, str]:
            # 1000 real prints would take minutes: the association's job limit is lowered instead.
            for _ in range(2):
                _, image_box = m.image_box()
                m.fill(image_box)
            state = _server_state(print_app, m.ae_title)  # type: ignore[attr-defined]
            state.max_jobs = 1 if session_level else 0
            if session_level:
                status = m.action(tk.FILM_SESSION, m.session())[0]
                assert state.jobs == {} and not any(b.printed for b in state.film_boxes.values())  # all or nothing
                return status, "Film Session N-ACTION"
            return m.action(tk.FILM_BOX, next(iter(state.film_boxes)))[0], "Film Box N-ACTION"
        return run

    def malformed(m: Modality) -> tuple[int, str]:
        # a sequence of undefined length whose item is cut short: the data set cannot be read
        broken = b"\x50\x20\x00\x05\xff\xff\xff\xff\xfe\xff\x00\xe0\x10\x00\x00\x00ab"
        return m.raw_create(tk.FILM_SESSION, broken), "Film Session N-CREATE"

    def memory_allocation(m: Modality) -> tuple[int, str]:
        return m.create(tk.session_ds(MemoryAllocation="1000"), tk.FILM_SESSION)[0], "Film Session N-CREATE"

    def session_setting_format(m: Modality) -> tuple[int, str]:
        ds = Dataset()
        ds.ImageDisplayFormat = "STANDARD\\1,1"
        return m.set(ds, tk.FILM_SESSION, m.session()), "Film Session N-SET"

    def second_session(m: Modality) -> tuple[int, str]:
        m.session()
        return m.create(tk.session_ds(), tk.FILM_SESSION)[0], "Film Session N-CREATE"

    def on_another_context(m: Modality) -> tuple[int, str]:
        return m.create(tk.session_ds(), tk.FILM_SESSION, meta=tk.PLUT)[0], "any N- request"

    def no_such_operation(m: Modality) -> tuple[int, str]:
        ds = Dataset()
        ds.PrinterName = "X"
        return m.set(ds, tk.PRINTER_CLASS, tk.PRINTER_INSTANCE), "any N- request"

    _ = port
    return {
        0x0000: lambda m: (m.get([0x21100010], tk.PRINTER_CLASS, tk.PRINTER_INSTANCE)[0], "every request"),
        0xB600: memory_allocation,
        0xB602: b602,
        0xB603: b603,
        0xB604: image_size(None),
        0xB609: image_size("CROP"),
        0xB605: lambda m: (m.create(tk.film_box_ds(m.session(), MaxDensity=900), tk.FILM_BOX)[0],
                           "Film Box N-CREATE"),
        0x0105: session_setting_format,
        0x0106: malformed,  # out-of-range values get it too: see the values tables' test
        0x0110: not_stored,
        0x0111: duplicate,
        0x0112: lambda m: (m.delete(tk.FILM_BOX, generate_uid()), "Film Box N-DELETE"),
        0x0118: on_another_context,
        0x0119: color_on_gray,
        0x0120: no_format,
        0x0121: missing_position,
        0x0123: lambda m: (m.action(tk.FILM_BOX, m.film_box()[0], 7)[0], "Film Box N-ACTION"),
        0x0211: no_such_operation,
        0x0213: second_session,
        0xC600: lambda m: (m.action(tk.FILM_SESSION, m.session())[0], "Film Session N-ACTION"),
        0xC601: queue_full(True),
        0xC602: queue_full(False),
        0xC603: image_size("FAIL"),
    }


async def test_every_listed_status_is_answered_to_some_request(print_app) -> None:
    rows = {int(row["Status"], 16): row for row in table("statuses")}
    provokers = _provokers(print_app)
    assert sorted(rows) == sorted(provokers), "the status table and the requests provoking them differ"

    def run() -> list[str]:
        wrong = []
        for code, provoke in provokers.items():
            ae_title = f"CONF{uuid.uuid4().hex[:8].upper()}"
            with modality(print_app.port, ae_title=ae_title) as m:
                m.ae_title = ae_title  # type: ignore[attr-defined]
                status, operation = provoke(m)
                if status != code:
                    wrong.append(f"0x{code:04X}: the request got 0x{status:04X}")
                if operation not in rows[code]["Returned by"]:
                    wrong.append(f"0x{code:04X}: {operation} is not in its Returned by")
                if not m.assoc.is_established:
                    wrong.append(f"0x{code:04X}: the association did not survive")
        return wrong

    assert await asyncio.to_thread(run) == []


# ---- character sets -------------------------------------------------------------------------------------

SAMPLES = ["张三 胸部CT", "Müller Zoë", "ZHANG SAN"]  # the first each character set can encode is sent


@pytest.mark.parametrize("row", table("character-sets"), ids=lambda r: r["Specific Character Set"])
async def test_text_in_each_listed_character_set_comes_back_intact(print_app, row: dict[str, str]) -> None:
    from pydicom.charset import python_encoding

    charset = None if row["Specific Character Set"].startswith("(") else row["Specific Character Set"]
    codec = python_encoding[charset] if charset else "ascii"
    label = next(s for s in SAMPLES if _encodable(s, codec))

    def run() -> tuple[int, Any]:
        with modality(print_app.port) as m:
            attrs = {"SpecificCharacterSet": charset} if charset else {}
            return m.create(tk.session_ds(label=label, **attrs), tk.FILM_SESSION)

    status, echoed = await asyncio.to_thread(run)
    assert status == 0 and echoed.FilmSessionLabel == label
    assert echoed.get("SpecificCharacterSet") == (None if label.isascii() else "ISO_IR 192")


def _encodable(text: str, codec: str) -> bool:
    try:
        text.encode(codec)
    except UnicodeError:
        return False
    return True


# ---- DCMTK -----------------------------------------------------------------------------------------------

async def _run(*argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    return int(proc.returncode or 0), out.decode(errors="replace")


async def test_dcmtk_echoscu(print_app) -> None:
    """DCMTK's echoscu: Verification answered; of DCMTK's 38 transfer syntaxes one the statement lists is
    chosen; a wrong called AE title is rejected as the statement says."""
    listed_ts = {row["Transfer Syntax"].replace(" (retired)", "") for row in table("transfer-syntaxes")}
    port = str(print_app.port)
    rc, log = await _run("echoscu", "-d", "-pts", "38", "-aet", "CONFORMANCE", "-aec", "PRINT_SCP", "127.0.0.1", port)
    assert rc == 0, log
    accepted = re.search(r"Context ID:\s+1 \(Accepted\).*?Accepted Transfer Syntax:\s*=?(\S[^\n]*)", log, re.S)
    assert accepted is not None, log
    dcmtk_names = {"LittleEndianImplicit": "Implicit VR Little Endian", "LittleEndianExplicit": "Explicit VR Little "
                   "Endian", "BigEndianExplicit": "Explicit VR Big Endian"}
    assert dcmtk_names.get(accepted.group(1).strip()) in listed_ts, log
    assert "Received Echo Response (Success)" in log, log
    rc, log = await _run("echoscu", "-aet", "CONFORMANCE", "-aec", "NOT_THE_PRINTER", "127.0.0.1", port)
    assert rc != 0 and "Called AE Title Not Recognized" in log, log


# ---- the two domain fixes found while writing the statement -------------------------------------------

def test_an_out_of_range_number_is_a_failure_not_the_warning_0116() -> None:
    """PS3.7 C.4: 0x0116 tells the SCU the instance was created all the same; nothing was."""
    state = PrintAssociation(calling_ae="A", called_ae="B", peer="p")
    with pytest.raises(PrintFailure) as refused:
        state.create_film_session(None, tk.session_ds(copies=100))
    assert refused.value.status == st.INVALID_ATTRIBUTE_VALUE and state.session is None


def test_a_collated_print_that_would_overfill_the_queue_prints_nothing() -> None:
    state = PrintAssociation(calling_ae="A", called_ae="B", peer="p", max_jobs=1)
    session, _, _ = state.create_film_session(None, tk.session_ds())
    for _ in range(2):
        _, rsp, _ = state.create_film_box(None, tk.film_box_ds(session), color=False)
        ib = rsp.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
        state.set_image_box(tk.GRAY_BOX, ib, tk.image_box_ds(1, tk.to_item(tk.anatomy(16, 1), bits=8)))
    with pytest.raises(PrintFailure) as refused:
        state.print_film_session(session)
    assert refused.value.status == st.FAIL_SESSION_PRINT_QUEUE_FULL
    assert state.jobs == {} and state.printed_films == 0
    assert not any(box.printed for box in state.film_boxes.values())


def test_a_refused_image_box_n_set_leaves_the_box_as_it_was() -> None:
    state = PrintAssociation(calling_ae="A", called_ae="B", peer="p")
    session, _, _ = state.create_film_session(None, tk.session_ds())
    _, rsp, _ = state.create_film_box(None, tk.film_box_ds(session), color=False)
    ib = rsp.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
    first = tk.to_item(tk.anatomy(16, 1), bits=8)
    state.set_image_box(tk.GRAY_BOX, ib, tk.image_box_ds(1, first, polarity="REVERSE"))
    second = tk.image_box_ds(1, tk.to_item(tk.anatomy(16, 2), bits=8))  # polarity NORMAL ...
    second.MagnificationType = "SIDEWAYS"  # ... but refused
    with pytest.raises(PrintFailure) as refused:
        state.set_image_box(tk.GRAY_BOX, ib, second)
    assert refused.value.status == st.INVALID_ATTRIBUTE_VALUE
    box = state.image_boxes[ib]
    assert box.polarity == "REVERSE" and box.magnification is None and box.image is first


async def test_dcmtk_prints_with_values_the_statement_lists(print_app, tmp_path: Path) -> None:
    """DCMTK's own print client (dcmpsprt + dcmprscu) with non-default values from the statement's
    tables: every response is a success and the film keeps what was asked for."""
    def last(table_name: str, attribute: str) -> str:
        row = next(r for r in table(table_name) if r["Attribute Name"] == attribute)
        value = ticked(row["Values"])[-1]
        return value.replace("_i", "_2") if value.endswith("_i") else value

    priority, medium = last("film-session-n-create", "Print Priority"), last("film-session-n-create", "Medium Type")
    destination = last("film-session-n-create", "Film Destination")
    label = f"CONF-{uuid.uuid4().hex[:8]}"
    orientations = next(r for r in table("film-box-n-create") if r["Attribute Name"] == "Film Orientation")
    assert "LANDSCAPE" in ticked(orientations["Values"])
    image = tk.modality_image_file(tmp_path / "ct.dcm", tk.anatomy(256, 9))
    cfg = tk.dcmtk_print_config(tmp_path, port=print_app.port)
    # our own calling AE title: test_dcmtk_print.py looks for the films of DCMPRSCU, the config's default
    Path(cfg).write_text(Path(cfg).read_text().replace("aetitle = DCMPRSCU", "aetitle = CONFORMANCE"))
    rc, log = await _run("dcmpsprt", "-c", cfg, "-p", "PLATFORM", "--landscape", "--trim", "--lin-od",
                         "--request-crop", image)
    assert rc == 0, log
    [stored_print] = tmp_path.glob("db/SP_*.dcm")
    rc, log = await _run("dcmprscu", "-c", cfg, "-p", "PLATFORM", "-d", "--priority", priority, "--medium-type", medium,
                         "--destination", destination, "--label", label, "--copies", "2", str(stored_print))
    # dcmprscu exits 0 whatever the SCP answered: its log is read for the statuses
    got = re.findall(r"Message Type\s*:\s*(N-[A-Z-]+ RSP).*?DIMSE Status\s*:\s*0x([0-9A-Fa-f]{4})", log, re.S)
    assert rc == 0 and got and all(int(code, 16) == 0 for _, code in got), log
    assert [kind for kind, _ in got].count("N-ACTION RSP") == 1, got
    [film] = await print_app.wait_films("session_label = $1", label)
    assert (film["priority"], film["medium_type"], film["destination"], film["orientation"]) == (
        priority, medium, destination, "LANDSCAPE")
