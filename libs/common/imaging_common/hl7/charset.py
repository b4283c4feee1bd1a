"""MSH-18 character sets: which codec decodes a message, and encodes our reply.

Chinese HIS feeds send UTF-8 ("UNICODE UTF-8") or GB 18030 ("GB 18030-2000"); many send GB
bytes without saying so. MSH-18 sits in the first segment, which is ASCII in every one of these
encodings, so it can be read before the message is decoded.
"""

from __future__ import annotations

# HL7 table 0211 values (and spellings seen in the field) -> Python codec.
CHARSETS = {
    "": None, "ASCII": "ascii", "8859/1": "latin-1", "UNICODE UTF-8": "utf-8", "UTF-8": "utf-8", "UTF8": "utf-8",
    "UNICODE": "utf-8", "GB 18030-2000": "gb18030", "GB18030": "gb18030", "GB 18030": "gb18030",
    "GB18030-2000": "gb18030", "GB 18030-2005": "gb18030", "GBK": "gb18030", "GB2312": "gb18030",
    "CNS 11643-1992": "big5", "BIG-5": "big5", "BIG5": "big5",
}
LABELS = {"utf-8": "UNICODE UTF-8", "gb18030": "GB 18030-2000", "ascii": "ASCII"}


class UnsupportedCharset(ValueError):
    def __init__(self, label: str):
        super().__init__(f"MSH-18 character set {label!r} is not supported")
        self.label = label


def msh18_of(raw: bytes) -> str:
    """MSH-18 read from the undecoded bytes (the MSH segment is ASCII)."""
    first = raw.lstrip(b"\x0b").split(b"\r", 1)[0].split(b"\n", 1)[0]
    if not first.startswith(b"MSH") or len(first) < 4:
        return ""
    sep = first[3:4]
    parts = first.split(sep)
    # parts[0]="MSH", parts[1]=MSH-2, so MSH-n is parts[n-1]
    value = parts[17] if len(parts) > 17 else b""
    repetition = first[5:6] if len(first) > 5 else b"~"
    return value.split(repetition)[0].decode("ascii", "replace").strip()


def codec_for(label: str, default: str = "utf-8") -> str:
    key = label.strip().upper()
    if key not in CHARSETS:
        raise UnsupportedCharset(label)
    return CHARSETS[key] or default


def decode(raw: bytes, default: str = "utf-8") -> tuple[str, str]:
    """The message text and the codec used: MSH-18 when present, else the default, then GB 18030."""
    label = msh18_of(raw)
    codec = codec_for(label, default)
    try:
        return raw.decode(codec), codec
    except UnicodeDecodeError:
        if label:
            raise
        # Unlabelled and not valid in the default: the common case is GB bytes from an older HIS.
        return raw.decode("gb18030"), "gb18030"
