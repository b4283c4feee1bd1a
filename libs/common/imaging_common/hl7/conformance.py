"""The HL7 v2 interface specification as data, and a check of a message against it.

docs/hl7-interface.md is written for people, but its message tables are also read by this module:

    <!-- hl7:message id=status-update dir=out app=IMAGING type=ORM^O01^ORM_O01 version=2.5 -->
    | Segment | Opt | Rpt | ... |          the message's segments, in order
    | Field | Name | Type | Opt | Rpt | Len | Value | ... |      every field we put (dir=out) or read (dir=in)

    <!-- hl7:table 0119-status -->
    | Code | Meaning |                     a code table the Value column names (`table 0119-status`)

    <!-- hl7:deviations -->
    | hl7apy reports | ... |               hl7apy findings that are accepted, each with its reason

`check(message, spec)` returns what in the message disagrees with its table: segment order and
cardinality, required (R) and unsupported (X) fields, repetitions, lengths, simple data types,
the Value rule; for outbound messages a non-empty field the table does not list is a finding too
(what we send is exactly what the document says). `hl7apy_problems(er7, spec)` validates with hl7apy
at STRICT level (the declared version and v2.5.1) and drops only the documented deviations.
`problems_of(raw, spec)` does both for a message as it was on the wire; `wire_tap()` collects every
frame this process writes (a test can check all of them).

Value rules: `=X` (the field is exactly X), `in A,B` (one of), `table NAME` (first component of each
repetition in the code table), `echo SEG-n` (the answered message's field), `ts` / `dt` (HL7 TS/DTM,
DT), `~REGEX` (the field matches), empty or `-` (no rule beyond type and length).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from imaging_common.hl7.message import Message, Segment

_MARKER = re.compile(r"<!--\s*hl7:(message|table|deviations)\b(.*?)-->")
_ATTR = re.compile(r"(\w+)=(\S+)")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_TS = re.compile(r"^\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,4})?)?)?)?)?)?([+-]\d{4})?$")
_DT = re.compile(r"^\d{4}(\d{2}(\d{2})?)?$")
_NM = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_SI = re.compile(r"^\d{1,4}$")
SIMPLE_TYPES = {"ID", "IS", "SI", "NM", "DT", "TS", "DTM", "ST", "TX", "FT"}


@dataclass(frozen=True)
class SegmentSpec:
    id: str
    opt: str  # R, O, C
    repeats: bool


@dataclass(frozen=True)
class FieldSpec:
    segment: str
    position: int
    name: str
    datatype: str
    opt: str  # R required, RE required-but-may-be-empty, O optional, C conditional, B backward compatible, X never
    repeats: int | None  # maximum repetitions; None: unbounded
    length: int | None
    rule: str
    on_error: str = ""  # inbound: what a missing/invalid value is answered (e.g. "AE 101")

    @property
    def ref(self) -> str:
        return f"{self.segment}-{self.position}"


@dataclass
class MessageSpec:
    id: str
    direction: str  # "in": we accept it; "out": we send it
    app: str  # MSH-3 of ours (dir=out) or "*"
    type: tuple[str, str, str]  # MSH-9; "*" matches anything (ACK's trigger)
    versions: tuple[str, ...]
    reply: str | None
    title: str
    segments: list[SegmentSpec] = field(default_factory=list)
    fields: dict[tuple[str, int], FieldSpec] = field(default_factory=dict)

    def matches(self, message: Message) -> bool:
        got = message.type
        if any(want != "*" and want != have for want, have in zip(self.type, got, strict=True)):
            return False
        return self.app == "*" or message.field("MSH", 3, component=1) == self.app

    def segment_pattern(self) -> re.Pattern[str]:
        parts = []
        for seg in self.segments:
            quantifier = ("+" if seg.repeats else "") if seg.opt == "R" else ("*" if seg.repeats else "?")
            parts.append(f"(?:{seg.id},){quantifier}")
        return re.compile("^" + "".join(parts) + "$")


@dataclass(frozen=True)
class Deviation:
    pattern: re.Pattern[str]
    reason: str


@dataclass
class InterfaceSpec:
    messages: dict[str, MessageSpec]
    tables: dict[str, set[str]]
    deviations: list[Deviation]

    def outbound(self) -> list[MessageSpec]:
        return [m for m in self.messages.values() if m.direction == "out"]

    def inbound(self) -> list[MessageSpec]:
        return [m for m in self.messages.values() if m.direction == "in"]

    def spec_for(self, message: Message, direction: str = "out") -> MessageSpec | None:
        """The outbound (or inbound) spec of this message; the most specific when several match."""
        found = [m for m in self.messages.values() if m.direction == direction and m.matches(message)]
        found.sort(key=lambda m: (m.app == "*", sum(t == "*" for t in m.type)))
        return found[0] if found else None


# ---- reading the document ----------------------------------------------------------------------


def default_path() -> Path:
    """docs/hl7-interface.md of the repository this library is checked out in."""
    return Path(__file__).resolve().parents[4] / "docs" / "hl7-interface.md"


def _cells(line: str) -> list[str]:
    text = line.strip()
    text = text[1:] if text.startswith("|") else text
    text = text[:-1] if text.endswith("|") and not text.endswith("\\|") else text
    return [p.strip().replace("\\|", "|") for p in _CELL_SPLIT.split(text)]


def _code(cell: str) -> str:
    """A cell's machine content: the text inside its first backticks, else the cell."""
    m = re.search(r"`([^`]*)`", cell)
    return (m.group(1) if m else cell).strip()


def _tables_after(lines: list[str], start: int, count: int) -> list[list[dict[str, str]]]:
    """The next `count` markdown tables after line `start` (rows as header -> cell)."""
    found: list[list[dict[str, str]]] = []
    i = start
    while i < len(lines) and len(found) < count:
        if _MARKER.search(lines[i]) and i != start:
            break
        if lines[i].lstrip().startswith("|") and i + 1 < len(lines) and re.match(r"^\s*\|[\s:|-]+\|\s*$",
                                                                                lines[i + 1]):
            header = [h.lower() for h in _cells(lines[i])]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                cells = _cells(lines[i])
                rows.append(dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=False)))
                i += 1
            found.append(rows)
            continue
        i += 1
    return found


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else None


def load(path: str | Path | None = None) -> InterfaceSpec:
    text = Path(path or default_path()).read_text(encoding="utf-8")
    lines = text.splitlines()
    messages: dict[str, MessageSpec] = {}
    tables: dict[str, set[str]] = {}
    deviations: list[Deviation] = []
    spec_fields_of: dict[str, str] = {}
    title = ""
    for n, line in enumerate(lines):
        if line.startswith("#"):
            title = line.lstrip("#").strip()
        m = _MARKER.search(line)
        if not m:
            continue
        kind, attrs = m.group(1), dict(_ATTR.findall(m.group(2)))
        if kind == "table":
            name = m.group(2).strip().split()[0]
            [rows] = _tables_after(lines, n, 1)
            tables[name] = {_code(r["code"]) for r in rows}
        elif kind == "deviations":
            [rows] = _tables_after(lines, n, 1)
            deviations += [Deviation(re.compile(_code(r["hl7apy reports"])), r.get("why", "")) for r in rows]
        else:
            spec = MessageSpec(id=attrs["id"], direction=attrs["dir"], app=attrs.get("app", "*"),
                               type=tuple((attrs["type"].split("^") + ["*", "*"])[:3]),  # type: ignore[arg-type]
                               versions=tuple(attrs.get("version", "2.5").split(",")), reply=attrs.get("reply"),
                               title=title)
            # fields=<id>: the field table is that message's (ADT^A01 reads what ADT^A04 reads)
            shared = attrs.get("fields")
            segment_rows, *rest = _tables_after(lines, n, 1 if shared else 2)
            field_rows = rest[0] if rest else []
            if shared:
                spec_fields_of[spec.id] = shared
            for r in segment_rows:
                spec.segments.append(SegmentSpec(_code(r["segment"]), _code(r["opt"]), _code(r["rpt"]).upper() == "Y"))
            for r in field_rows:
                seg, _, pos = _code(r["field"]).partition("-")
                rpt = _code(r.get("rpt", ""))
                spec.fields[(seg, int(pos))] = FieldSpec(
                    seg, int(pos), r.get("name", ""), _code(r.get("type", "")), _code(r.get("opt", "O")),
                    None if rpt.upper() == "Y" else (_int(rpt) or 1), _int(_code(r.get("len", ""))),
                    _code(r.get("value", "")), _code(r.get("if missing or invalid", "")))
            if spec.id in messages:
                raise ValueError(f"message spec {spec.id} defined twice")
            messages[spec.id] = spec
    for target, source in spec_fields_of.items():
        messages[target].fields = dict(messages[source].fields)
    return InterfaceSpec(messages, tables, deviations)


# ---- checking a message ------------------------------------------------------------------------


def _raw_repetitions(message: Message, seg: Segment, n: int) -> list[str]:
    if seg.id == "MSH" and n in (1, 2):
        return [seg.raw(n)]
    raw = seg.raw(n)
    return raw.split(message.encoding.repetition) if raw else []


def _type_problem(datatype: str, value: str, message: Message) -> str | None:
    enc = message.encoding
    first = value.split(enc.component)[0]
    if datatype in ("TS", "DTM") and not _TS.match(first):
        return f"{value!r} is not an HL7 TS/DTM"
    if datatype == "DT" and not _DT.match(value):
        return f"{value!r} is not an HL7 DT"
    if datatype == "NM" and not _NM.match(value):
        return f"{value!r} is not an HL7 NM"
    if datatype == "SI" and not _SI.match(value):
        return f"{value!r} is not an HL7 SI"
    if datatype in ("ID", "IS", "SI", "NM", "DT", "ST", "TX", "FT") and enc.component in value:
        return f"{value!r}: a {datatype} has no components"
    return None


def _rule_problem(rule: str, raw: str, message: Message, tables: dict[str, set[str]],
                  original: Message | None) -> str | None:
    if not rule or rule == "-":
        return None
    enc = message.encoding
    value = enc.unescape(raw)
    if rule.startswith("="):
        return None if raw == rule[1:] else f"{raw!r} is not {rule[1:]!r}"
    if rule.startswith("in "):
        allowed = [a.strip() for a in rule[3:].split(",")]
        return None if raw in allowed else f"{raw!r} is not one of {allowed}"
    if rule.startswith("table "):
        name = rule[6:].strip()
        if name not in tables:
            return f"code table {name} is not in the specification"
        code = enc.unescape(raw.split(enc.component)[0])
        return None if code in tables[name] else f"{code!r} is not in table {name} {sorted(tables[name])}"
    if rule.startswith("echo "):
        if original is None:
            return None
        seg, _, pos = rule[5:].strip().partition("-")
        want = original.segment(seg)
        expected = want.raw(int(pos)) if want is not None else ""
        return None if raw == expected else f"{raw!r} does not echo {seg}-{pos} {expected!r}"
    if rule in ("ts", "dt"):
        pattern = _TS if rule == "ts" else _DT
        return None if pattern.match(value.split(enc.component)[0]) else f"{value!r} is not a {rule.upper()}"
    if rule.startswith("~"):
        return None if re.search(rule[1:], raw) else f"{raw!r} does not match {rule[1:]!r}"
    return f"unknown Value rule {rule!r}"


def check(message: Message | str, spec: MessageSpec, tables: dict[str, set[str]], *,
          original: Message | None = None) -> list[str]:
    """What in `message` disagrees with `spec` (empty: it conforms)."""
    msg = Message.parse(message) if isinstance(message, str) else message
    problems: list[str] = []
    if not spec.matches(msg):
        problems.append(f"MSH-9/MSH-3 {'^'.join(msg.type)} from {msg.field('MSH', 3)} is not {spec.id}")
    if msg.field("MSH", 12, component=1) not in spec.versions:
        problems.append(f"MSH-12 {msg.field('MSH', 12)!r} is not one of {list(spec.versions)}")
    listed_segments = {s.id for s in spec.segments}
    # What we accept may carry segments we do not read (NK1, AL1, Z-segments...): only ours are ordered.
    order = "".join(f"{s.id}," for s in msg.segments if spec.direction == "out" or s.id in listed_segments)
    if not spec.segment_pattern().match(order):
        wanted = " ".join(s.id + ("" if s.opt == "R" else "?") + ("*" if s.repeats else "") for s in spec.segments)
        problems.append(f"segments {order.rstrip(',')} do not follow {wanted}")
    for seg in msg.segments:
        if seg.id not in listed_segments:
            continue  # reported by the sequence check
        last = len(seg.fields) - 1
        if spec.direction == "out":
            for n in range(1, last + 1):
                if (seg.id, n) not in spec.fields and _raw_repetitions(msg, seg, n):
                    problems.append(f"{seg.id}-{n} {seg.raw(n)!r} is sent but not in the specification")
        for (seg_id, n), f in spec.fields.items():
            if seg_id != seg.id:
                continue
            reps = _raw_repetitions(msg, seg, n)
            present = [r for r in reps if r]
            if not present and f.rule.startswith("echo ") and original is not None:
                why = _rule_problem(f.rule, "", msg, tables, original)  # an echo left out is a problem too
                if why:
                    problems.append(f"{f.ref} ({f.name}): {why}")
            if f.opt == "R" and not present:
                problems.append(f"{f.ref} ({f.name}) is required and empty")
            if f.opt == "X" and present:
                problems.append(f"{f.ref} ({f.name}) is not supported and must be empty")
            if f.repeats is not None and len(reps) > f.repeats:
                problems.append(f"{f.ref} has {len(reps)} repetitions, at most {f.repeats}")
            for rep in present:
                if f.length is not None and len(msg.encoding.unescape(rep)) > f.length:
                    problems.append(f"{f.ref} is {len(msg.encoding.unescape(rep))} characters, at most {f.length}")
                if f.datatype in SIMPLE_TYPES and not (seg.id == "MSH" and n in (1, 2)):
                    why = _type_problem(f.datatype, rep, msg)
                    if why:
                        problems.append(f"{f.ref}: {why}")
                why = _rule_problem(f.rule, rep, msg, tables, original)
                if why:
                    problems.append(f"{f.ref} ({f.name}): {why}")
    return problems


# ---- hl7apy -------------------------------------------------------------------------------------


def hl7apy_findings(er7: str, version: str | None = None) -> list[str]:
    """Every error and warning hl7apy's STRICT validation reports for `er7` read as `version` (default:
    its MSH-12), the parse itself included."""
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message
    from hl7apy.validation import Validator

    text = er7.replace("\n", "\r")
    if version is not None:
        fields = text.split("\r", 1)[0].split("|")
        if len(fields) > 11:
            fields[11] = version
            text = "|".join(fields) + ("\r" + text.split("\r", 1)[1] if "\r" in text else "")
    try:
        parsed = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    except Exception as exc:  # hl7apy raises many kinds: each is a finding
        return [f"Error: {type(exc).__name__}: {exc}"]
    fd, path = tempfile.mkstemp(suffix=".txt")
    os.close(fd)
    try:
        with contextlib.suppress(Exception):
            Validator.validate(parsed, report_file=path)
        return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    finally:
        os.unlink(path)


def hl7apy_problems(er7: str, spec: InterfaceSpec, versions: tuple[str | None, ...] = (None, "2.5.1")) -> list[str]:
    """hl7apy's findings at the declared version and at v2.5.1, less the documented deviations. A message
    declaring v2.3.1/v2.4 (an ACK answering such a HIS in its own version) is read as its version only:
    its ERR has the older form, which v2.5.1 does not have."""
    problems = []
    declared = Message.parse(er7.replace("\n", "\r")).version
    if _version(declared) < (2, 5):
        versions = tuple(v for v in versions if v is None)
    for version in versions:
        for finding in hl7apy_findings(er7, version):
            if not any(d.pattern.search(finding) for d in spec.deviations):
                problems.append(f"hl7apy v{version or 'declared'}: {finding}")
    return problems


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split(".")[:2])
    except ValueError:
        return (2, 5)


def problems_of(raw: bytes | str, spec: InterfaceSpec, *, original: Message | None = None,
                direction: str = "out") -> tuple[MessageSpec | None, list[str]]:
    """A message as it was on the wire (bytes decoded per MSH-18): its table, and everything that departs
    from it or that hl7apy finds beyond the documented deviations. No table: (None, [why])."""
    from imaging_common.hl7.charset import decode

    text = decode(raw)[0] if isinstance(raw, bytes) else raw
    message = Message.parse(text)
    table = spec.spec_for(message, direction)
    if table is None:
        return None, [f"{'^'.join(message.type)} from {message.field('MSH', 3)} is in no table of the specification"]
    return table, check(message, table, spec.tables, original=original) + hl7apy_problems(text, spec)


# ---- the wire ----------------------------------------------------------------------------------


@contextlib.contextmanager
def wire_tap() -> Iterator[list[bytes]]:
    """Every HL7 message framed for the wire by this process (MLLPServer replies and MLLPClient sends),
    as bytes, while the block runs."""
    from imaging_common.hl7 import mllp

    seen: list[bytes] = []
    original = mllp.frame

    def tapped(payload: bytes) -> bytes:
        seen.append(payload)
        return original(payload)

    mllp.frame = tapped  # type: ignore[assignment]
    try:
        yield seen
    finally:
        mllp.frame = original  # type: ignore[assignment]
