"""Person names as the matcher sees them: Chinese characters, their pinyin, or Latin script.

A Chinese name is folded to simplified characters (OpenCC t2s), then to toneless pinyin, so
"張偉", "张伟" and "ZHANG WEI" meet on the same key; "张维" (a homophone the clerk picked from
the input method) meets them on pinyin but not on characters, which the comparator tells apart.
A "fuzzy" pinyin also folds the initials and finals that southern speakers merge (zh/z, n/l,
-ng/-n), for blocking only. Latin names are upper-cased, stripped of accents and punctuation;
their tokens are compared in any order, because family/given order varies between systems.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from opencc import OpenCC
from pypinyin import Style, lazy_pinyin, pinyin

_T2S = OpenCC("t2s")
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_NON_NAME = re.compile(r"[^A-Z ]+")
# Compound surnames that must not be split as family name = first character.
COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 轩辕 令狐 端木 独孤 南宫 西门 申屠".split()
)
# Heteronyms read differently as surnames (pypinyin reads them as common words).
SURNAME_READINGS = {"单": "shan", "曾": "zeng", "解": "xie", "仇": "qiu", "朴": "piao", "区": "ou",
                    "查": "zha", "尉迟": "yuchi", "万俟": "moqi", "黑": "he", "盖": "ge", "乐": "yue",
                    "覃": "qin", "翟": "zhai", "缪": "miao", "长孙": "zhangsun", "重": "chong"}
# The same surnames with their tones (numbered pinyin, one syllable per character).
SURNAME_TONES = {"单": ("shan4",), "曾": ("zeng1",), "解": ("xie4",), "仇": ("qiu2",), "朴": ("piao2",),
                 "区": ("ou1",), "查": ("zha1",), "尉迟": ("yu4", "chi2"), "万俟": ("mo4", "qi2"), "黑": ("he4",),
                 "盖": ("ge3",), "乐": ("yue4",), "覃": ("qin2",), "翟": ("zhai2",), "缪": ("miao4",),
                 "长孙": ("zhang3", "sun1"), "重": ("chong2",)}


@dataclass(frozen=True, slots=True)
class NameForm:
    """Comparison forms of one name."""

    han: str  # simplified characters, no spaces ("" when the name is Latin script only)
    pinyin: str  # toneless pinyin or Latin letters, tokens joined by one space, upper case
    key: str  # pinyin without spaces, tokens in written order, e.g. "ZHANGWEI"
    sorted_key: str  # tokens sorted, for family/given order swaps
    fuzzy: str  # key with southern-accent merges, for blocking
    family_key: str  # pinyin of the family name (first token or compound surname)
    # Pinyin with tones, one numbered syllable per character ("zi3", "han2"); () for Latin script.
    # Two names in characters that read the same, tones included, sound the same when called out.
    tones: tuple[str, ...] = ()

    @property
    def is_han(self) -> bool:
        return bool(self.han)


@lru_cache(maxsize=65536)
def _simplified_char(ch: str) -> str:
    return _T2S.convert(ch) if ch >= "\u3400" else ch


@lru_cache(maxsize=65536)
def _pinyin_char(ch: str) -> str:
    return "".join(lazy_pinyin(ch, style=Style.NORMAL, errors="ignore"))


@lru_cache(maxsize=65536)
def _tone_char(ch: str) -> str:
    """The usual reading with its tone; a neutral-tone reading (子 as a suffix: zi5) gives way to the
    first toned one, since a character in a name is read on its own (子涵: zi3)."""
    readings = pinyin(ch, style=Style.TONE3, heteronym=True, neutral_tone_with_five=True, errors="ignore")
    if not readings or not readings[0]:
        return ""
    first = pinyin(ch, style=Style.TONE3, neutral_tone_with_five=True, errors="ignore")[0][0]
    if first.endswith("5"):
        first = next((r for r in readings[0] if not r.endswith("5")), first)
    return first


def tone_syllables(han: str) -> tuple[str, ...]:
    """Numbered pinyin of a name in characters, the surname read as a surname (单: shan4)."""
    family, given = split_han_name(han)
    head = SURNAME_TONES.get(family) or tuple(map(_tone_char, family))
    return head + tuple(t for t in map(_tone_char, given) if t)


def pinyin_syllables(han: str) -> list[str]:
    """Upper-case toneless pinyin of each character ("子涵" -> ["ZI", "HAN"])."""
    return [p.upper() for p in map(_pinyin_char, han) if p]


def to_simplified(text: str) -> str:
    """Character by character (cached): matching needs the same fold on both sides, not phrase fidelity."""
    return "".join(map(_simplified_char, text))


def has_han(text: str) -> bool:
    return bool(_HAN.search(text))


def _ascii_fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _fuzzy(key: str) -> str:
    text = key.replace("ZH", "Z").replace("CH", "C").replace("SH", "S").replace("L", "N")
    text = text.replace("ING", "IN").replace("ENG", "EN").replace("ANG", "AN")
    return text.replace("V", "U")


def split_han_name(han: str) -> tuple[str, str]:
    """Family and given name of a Chinese name written in characters (compound surnames kept whole)."""
    if len(han) >= 3 and han[:2] in COMPOUND_SURNAMES:
        return han[:2], han[2:]
    return han[:1], han[1:]


@lru_cache(maxsize=262144)
def name_form(raw: str | None) -> NameForm | None:
    """Forms of a name as written ("张三", "張三", "ZHANG^SAN", "Zhang San", "SMITH^JOHN")."""
    if not raw:
        return None
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text:
        return None
    if has_han(text):
        han = "".join(_HAN.findall(to_simplified(text)))
        family, given = split_han_name(han)
        family_py = SURNAME_READINGS.get(family) or "".join(map(_pinyin_char, family))
        given_py = [p for p in map(_pinyin_char, given) if p]
        tokens = [family_py.upper()] + [p.upper() for p in given_py]
        # A pinyin-only record writes the given name as one token ("ZHANG XIAOMING"); so do we.
        written = [tokens[0], "".join(tokens[1:])] if len(tokens) > 1 else tokens
    else:
        han = ""
        latin = _NON_NAME.sub(" ", _ascii_fold(text).upper().replace("^", " ").replace(",", " "))
        written = [t for t in latin.split() if t]
        if not written:
            return None
    key = "".join(written)
    return NameForm(
        han=han, pinyin=" ".join(written), key=key, sorted_key="".join(sorted(written)),
        fuzzy=_fuzzy(key), family_key=written[0], tones=tone_syllables(han) if han else (),
    )


def latin_of(raw: str | None) -> str | None:
    """DICOM-style Latin form "ZHANG^SAN" of a name (for PatientRef.name_latin)."""
    form = name_form(raw)
    if form is None:
        return None
    parts = form.pinyin.split(" ", 1)
    return "^".join(parts)


def _syllables() -> frozenset[str]:
    from pypinyin.pinyin_dict import pinyin_dict

    out = set()
    for readings in pinyin_dict.values():
        for r in readings.split(","):
            plain = "".join(ch for ch in unicodedata.normalize("NFD", r) if not unicodedata.combining(ch))
            plain = plain.upper().replace("Ü", "V")
            if any(v in plain for v in "AEIOUV"):  # not the interjections hm, ng
                out.add(plain)
    return frozenset(out)


PINYIN_SYLLABLES = _syllables()


@lru_cache(maxsize=65536)
def is_pinyin(token: str) -> bool:
    """The token splits into pinyin syllables ("ZIHAN" = ZI HAN; "MICHAELA" does not)."""
    n = len(token)
    ok = [True] + [False] * n
    for end in range(1, n + 1):
        ok[end] = any(ok[start] and token[start:end] in PINYIN_SYLLABLES for start in range(max(0, end - 6), end))
    return ok[n]


def reads_as_pinyin(name: NameForm) -> bool:
    """A name in characters, or in Latin letters that could be a Chinese name's pinyin."""
    return bool(name.han) or all(is_pinyin(t) for t in name.pinyin.split(" "))
