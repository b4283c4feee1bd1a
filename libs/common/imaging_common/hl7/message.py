"""HL7 v2 messages in ER7 (pipe) encoding: parse, read fields by position, build, escape.

Deliberately small and tolerant: a feed from a real HIS has optional fields missing, Z-segments
and local habits that a strict structure validator would reject for no benefit. Positions follow
the standard (PID-5 is `msg.field("PID", 5)`); MSH-1 is the field separator itself, so MSH field
numbers match the standard too. Values are unescaped on read and escaped on build.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SEGMENT_SEPARATOR = "\r"
_SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f\x09]")  # C0 controls and DEL (CR/LF become .br)


class HL7ParseError(ValueError):
    """The message is not HL7 v2 ER7 (no MSH, bad segment id...): answered with AR."""

    def __init__(self, text: str, *, segment: str = "MSH", position: int | None = None):
        super().__init__(text)
        self.segment = segment
        self.position = position


@dataclass(frozen=True)
class Encoding:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def msh2(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent

    def unescape(self, text: str) -> str:
        if self.escape not in text:
            return text
        e = self.escape
        out, i = [], 0
        table = {"F": self.field, "S": self.component, "R": self.repetition, "E": self.escape, "T": self.subcomponent}
        while i < len(text):
            if text[i] == e:
                end = text.find(e, i + 1)
                if end > i:
                    code = text[i + 1:end]
                    if code in table:
                        out.append(table[code])
                    elif code.startswith("X") and len(code) > 1:
                        try:
                            out.append(bytes.fromhex(code[1:]).decode("latin-1"))
                        except ValueError:
                            out.append(text[i:end + 1])
                    elif code in (".br", "H", "N"):
                        out.append("\n" if code == ".br" else "")
                    else:
                        out.append(text[i:end + 1])
                    i = end + 1
                    continue
            out.append(text[i])
            i += 1
        return "".join(out)

    def escape_text(self, text: str) -> str:
        """A value as it may stand in a field: delimiters as \\F\\ \\S\\ \\R\\ \\T\\ \\E\\ (HL7 v2 2.7),
        line breaks as \\.br\\, and every other control character (MLLP's <VT> 0x0B and <FS> 0x1C among
        them, which would end the frame early) as \\Xhh\\: nothing taken from data can break a
        segment, a message or its MLLP frame."""
        e = self.escape
        text = text.replace(e, f"{e}E{e}")
        for ch, code in ((self.field, "F"), (self.component, "S"), (self.repetition, "R"), (self.subcomponent, "T")):
            text = text.replace(ch, f"{e}{code}{e}")
        text = text.replace("\r\n", f"{e}.br{e}").replace("\n", f"{e}.br{e}").replace("\r", f"{e}.br{e}")
        return _CONTROL.sub(lambda m: f"{e}X{ord(m.group()):02X}{e}", text)


@dataclass
class Segment:
    id: str
    fields: list[str]  # raw (escaped) fields; fields[0] is the segment id, so fields[n] is SEG-n

    def raw(self, n: int) -> str:
        return self.fields[n] if 0 <= n < len(self.fields) else ""


@dataclass
class Message:
    segments: list[Segment]
    encoding: Encoding = field(default_factory=Encoding)

    # ---- reading ------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> Message:
        text = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r\x0b\x1c ")
        if not text.startswith("MSH") or len(text) < 8:
            raise HL7ParseError("the message does not start with an MSH segment")
        enc = Encoding(text[3], text[4], text[5], text[6], text[7])
        if len({enc.field, enc.component, enc.repetition, enc.escape, enc.subcomponent}) != 5:
            raise HL7ParseError("MSH-1/MSH-2 encoding characters are not distinct", position=2)
        segments = []
        for n, line in enumerate(s for s in text.split("\r") if s.strip()):
            parts = line.split(enc.field)
            if not _SEGMENT_ID.match(parts[0]):
                raise HL7ParseError(f"segment {n + 1} has no valid segment id", segment=parts[0][:3] or "?")
            if parts[0] == "MSH":
                # MSH-1 is the separator itself: re-insert it so MSH-n is fields[n].
                parts = ["MSH", enc.field, *parts[1:]]
            segments.append(Segment(parts[0], parts))
        msg = cls(segments, enc)
        if not msg.field("MSH", 9):
            raise HL7ParseError("MSH-9 (message type) is empty", position=9)
        if not msg.field("MSH", 10):
            raise HL7ParseError("MSH-10 (message control id) is empty", position=10)
        return msg

    def segment(self, seg_id: str, index: int = 0) -> Segment | None:
        found = [s for s in self.segments if s.id == seg_id]
        return found[index] if index < len(found) else None

    def all(self, seg_id: str) -> list[Segment]:
        return [s for s in self.segments if s.id == seg_id]

    def field(self, seg_id: str, n: int, *, component: int | None = None, repetition: int = 0,
              segment: Segment | None = None) -> str:
        """SEG-n (1-based component), unescaped; "" when absent."""
        seg = segment or self.segment(seg_id)
        if seg is None:
            return ""
        raw = seg.raw(n)
        if seg_id == "MSH" and n in (1, 2):
            return raw
        reps = raw.split(self.encoding.repetition)
        if repetition >= len(reps):
            return ""
        value = reps[repetition]
        if component is not None:
            comps = value.split(self.encoding.component)
            value = comps[component - 1] if component - 1 < len(comps) else ""
            value = value.split(self.encoding.subcomponent)[0]
        return self.encoding.unescape(value)

    def repetitions(self, seg_id: str, n: int, segment: Segment | None = None) -> list[list[str]]:
        """Each repetition of SEG-n as its unescaped components."""
        seg = segment or self.segment(seg_id)
        if seg is None or not seg.raw(n):
            return []
        enc = self.encoding
        return [[enc.unescape(c.split(enc.subcomponent)[0]) for c in rep.split(enc.component)]
                for rep in seg.raw(n).split(enc.repetition) if rep]

    @property
    def type(self) -> tuple[str, str, str]:
        """(message code, trigger event, structure), e.g. ("ADT", "A01", "ADT_A01")."""
        return (self.field("MSH", 9, component=1), self.field("MSH", 9, component=2),
                self.field("MSH", 9, component=3))

    @property
    def control_id(self) -> str:
        return self.field("MSH", 10)

    @property
    def version(self) -> str:
        return self.field("MSH", 12, component=1) or "2.5"

    @property
    def charset(self) -> str:
        return self.field("MSH", 18)

    # ---- writing ------------------------------------------------------------------------
    def to_er7(self) -> str:
        lines = []
        for seg in self.segments:
            if seg.id == "MSH":
                lines.append("MSH" + self.encoding.field + self.encoding.field.join(seg.fields[2:]))
            else:
                lines.append(self.encoding.field.join(seg.fields))
        return SEGMENT_SEPARATOR.join(lines) + SEGMENT_SEPARATOR

    def __str__(self) -> str:
        return self.to_er7()


def build_segment(seg_id: str, *fields: str | list[str] | None, encoding: Encoding | None = None) -> Segment:
    """A segment from values: a str is escaped, a list is joined as components (each escaped)."""
    enc = encoding or Encoding()
    raw: list[str] = [seg_id]
    for value in fields:
        if value is None:
            raw.append("")
        elif isinstance(value, list):
            raw.append(enc.component.join(enc.escape_text(v or "") for v in value))
        else:
            raw.append(enc.escape_text(value))
    return Segment(seg_id, raw)


def build_msh(*, sending_app: str, sending_facility: str, receiving_app: str | list[str],
              receiving_facility: str | list[str], message_type: list[str], control_id: str, timestamp: str,
              version: str = "2.5", charset: str | None = None, processing_id: str = "P") -> Segment:
    """MSH; an application or facility given as a list is an HD's components (a peer's MSH-3/MSH-4 echoed
    in MSH-5/MSH-6 keeps its namespace^universal id^type), a str is one value."""
    enc = Encoding()

    def esc(value: str | list[str]) -> str:  # every value may come from data (a peer's MSH-3, a receiver's settings)
        if isinstance(value, list):
            return enc.component.join(enc.escape_text(v) for v in value).rstrip(enc.component)
        return enc.escape_text(value)

    fields = ["MSH", enc.field, enc.msh2, esc(sending_app), esc(sending_facility), esc(receiving_app),
              esc(receiving_facility), esc(timestamp), "", enc.component.join(esc(t) for t in message_type),
              esc(control_id), esc(processing_id), esc(version), "", "", "", "", "", esc(charset or "")]
    while fields and fields[-1] == "" and len(fields) > 13:
        fields.pop()
    return Segment("MSH", fields)
