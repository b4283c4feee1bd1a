"""Specific Character Set (0008,0005): which bytes mean which characters (PS3.3 C.12.1.1.2, PS3.5 6.1).

Chinese modalities speak GB18030 (or GBK / ISO 2022 GB2312), newer ones ISO_IR 192 (UTF-8),
older ones nothing at all (ASCII). We store text as Python `str` (UTF-8 in PostgreSQL) and
convert at the edge: decode a peer's bytes with the set it declared, and encode a reply in a set
that can carry every character of it — never dropping Chinese characters to `?`.

    decode_text(b"\\xd5\\xc5\\xc8\\xfd", "GB18030")     -> "张三"
    encode_text("张三", "ISO_IR 192")                    -> b"\\xe5\\xbc\\xa0\\xe4\\xb8\\x89"
    choose_reply_charset(["张三"], requested="ISO_IR 100") -> "ISO_IR 192"  (Latin-1 can't carry it)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from pydicom import charset as _pydicom_charset
from pydicom.valuerep import TEXT_VR_DELIMS

DEFAULT_REPERTOIRE = "ISO_IR 6"  # what an absent (0008,0005) means: ASCII
UTF8 = "ISO_IR 192"

# Defined terms whose single value is a complete, stateless encoding: a reply may use them as is.
# (ISO 2022 terms switch sets with escape sequences; we decode them but never reply in them.)
_STATELESS = {"ISO_IR 6", "ISO_IR 100", "ISO_IR 101", "ISO_IR 109", "ISO_IR 110", "ISO_IR 126",
              "ISO_IR 127", "ISO_IR 138", "ISO_IR 144", "ISO_IR 148", "ISO_IR 166", "ISO_IR 13",
              "ISO_IR 192", "GB18030", "GBK"}


# Defined terms by a spelling-insensitive key ("ISO-IR 192", "iso_ir_192" -> "ISO_IR 192").
_CANONICAL = {t.upper().replace("_", " "): t for t in _pydicom_charset.python_encoding if t}


class UnknownCharacterSet(ValueError):
    """A Specific Character Set term we cannot decode with (a peer's typo, an unsupported set)."""


def normalize_charsets(value: str | Sequence[str] | None) -> list[str]:
    """The declared terms as a list, ASCII for an absent or empty value; raises for unknown terms.

    Accepts what pydicom gives for (0008,0005): None, "GB18030", ["", "ISO 2022 IR 58"].
    Common misspellings seen on modalities ("ISO-IR 192", "gb18030", "ISO_IR_100") are fixed.
    """
    if value is None:
        return [DEFAULT_REPERTOIRE]
    return list(_normalize((value,) if isinstance(value, str) else tuple(value)))


@lru_cache(maxsize=256)
def _normalize(terms: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for i, raw in enumerate(terms):
        term = (raw or "").strip()
        if not term:
            out.append(DEFAULT_REPERTOIRE if i == 0 else "")
            continue
        fixed = term.upper().replace("-", " ").replace("_", " ")
        if fixed not in _CANONICAL:
            raise UnknownCharacterSet(f"unknown Specific Character Set term {term!r}")
        out.append(_CANONICAL[fixed])
    return tuple(out) or (DEFAULT_REPERTOIRE,)


def python_codecs(charsets: str | Sequence[str] | None) -> list[str]:
    """Python codec names for the declared terms (pydicom's table), e.g. ["GB18030"]."""
    return [_pydicom_charset.python_encoding[t or ""] for t in normalize_charsets(charsets)]


def decode_text(value: bytes, charsets: str | Sequence[str] | None, *, delimiters: Iterable[str] = ()) -> str:
    """Bytes of a text value as `str`, decoded with the declared set(s), ISO 2022 escapes included.

    Raises UnicodeDecodeError when the bytes are not valid in the declared set: a wrong
    declaration must be reported, not silently turned into replacement characters.
    """
    codecs = python_codecs(charsets)
    if len(codecs) == 1 and normalize_charsets(charsets)[0] in _STATELESS:
        codec = "ascii" if codecs[0] == "iso8859" else codecs[0]
        if codec == "ascii" and any(b > 0x7F for b in value):
            # Undeclared 8-bit bytes: Chinese sites mostly mean GB18030 (a superset of GBK/GB2312).
            return value.decode("GB18030")
        return value.decode(codec)
    if "ISO 2022 IR 58" in normalize_charsets(charsets) and not any(
        t.startswith("ISO 2022 IR 8") or t.startswith("ISO 2022 IR 1") for t in normalize_charsets(charsets)[1:]
    ):
        # GB2312 in G1 is EUC-CN after its designation ESC $ ) A; pydicom leaves the escape in
        # the text, so drop the designations and read the bytes as GB18030 (a superset).
        return value.replace(b"\x1b$)A", b"").replace(b"\x1b(B", b"").decode("GB18030")
    # PN delimiters reset ISO 2022 shifts (PS3.5 6.1.2.5.3); text VRs reset at CR/LF/TAB/FF.
    delims = {ord(d) for d in delimiters} or (TEXT_VR_DELIMS | {0x5E, 0x3D})
    return _pydicom_charset.decode_bytes(value, codecs, delims)


def encode_text(value: str, charsets: str | Sequence[str] | None) -> bytes:
    """`value` in the declared set; raises UnicodeEncodeError when it cannot carry a character."""
    terms = normalize_charsets(charsets)
    if len(terms) == 1 and terms[0] in _STATELESS:
        codec = python_codecs(terms)[0]
        return value.encode("ascii" if codec == "iso8859" else codec)
    return _pydicom_charset.encode_string(value, python_codecs(terms))


def can_encode(texts: Iterable[str], charset: str) -> bool:
    """Whether every text survives a round trip through the single, stateless `charset`."""
    term = normalize_charsets(charset)[0]
    if term not in _STATELESS:
        return False
    codec = python_codecs(term)[0]
    codec = "ascii" if codec == "iso8859" else codec
    try:
        for text in texts:
            text.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def choose_reply_charset(
    texts: Iterable[str], *, requested: str | Sequence[str] | None = None, fallback: str = UTF8
) -> str | None:
    """The Specific Character Set for a reply carrying `texts`; None means plain ASCII (omit the tag).

    The peer's own set when it can carry the data (a GB18030 modality gets GB18030 back),
    otherwise `fallback` (UTF-8 by default, which carries everything).
    """
    texts = list(texts)
    if all(text.isascii() for text in texts):
        return None
    try:
        terms = [t for t in normalize_charsets(requested) if t]
    except UnknownCharacterSet:
        terms = []
    if len(terms) == 1 and terms[0] != DEFAULT_REPERTOIRE and can_encode(texts, terms[0]):
        return terms[0]
    if can_encode(texts, fallback):
        return fallback
    return UTF8
