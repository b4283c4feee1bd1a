"""Blocking: which records are worth comparing. A pair is a candidate when it shares any key of any pass.

Several independent passes, so that a record with errors in several fields still shares some key
with its other records (FEBRL3's duplicates carry up to ten changes each; a single name + birth
date pass kept 40 % of their pairs):
- identifiers: an ID number, or one of three overlapping parts of it (a wrong digit keeps one);
  hospital cards, HIS ids, the phone;
- name + birth date: name + year, name + month/day (a date typo), fuzzy pinyin + date (a southern
  accent), family name + date (a given-name typo or homophone);
- phonetic name + birth date: Soundex of each name token + date (a typo in the name, either
  order of family and given name);
- birth date + initial: the date and the given name's first letter (a name typed anew);
- postcode + phonetic name token (a mistyped or missing birth date);
- sorted neighbourhood (batch only): records sorted on their normalised name, each compared with
  its WINDOW - 1 followers (two typos in the name and one in the date).
Keys are plain strings, so the same function feeds the in-memory index and the database table.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import jellyfish

from imaging_common.empi.record import MatchRecord

MAX_NAME_TOKENS = 3  # "ZHANG XIAO MING", "O SHANNESSY ANNE": more tokens add keys, not pairs


@lru_cache(maxsize=262144)
def _soundex(token: str) -> str:
    return jellyfish.soundex(token) if token.isalpha() else token


def _tokens(r: MatchRecord) -> list[str]:
    return r.name.pinyin.split(" ")[:MAX_NAME_TOKENS] if r.name is not None else []


def identifier_keys(r: MatchRecord) -> set[str]:
    keys: set[str] = set()
    for kind, ident in r.national.items():
        v = ident.value
        keys.add(f"I:{kind.value}:{v}")
        if len(v) == 18:
            # Region, birth date, sequence + check: each key leaves one part out, so that a wrong digit in
            # that part keeps the key; each is narrow (a million records share a region and a birth month
            # by the thousand, a region and a birth day by the handful).
            keys.add(f"Ia:{v[:14]}")  # region + date: a typo in the sequence
            keys.add(f"Ib:{v[:6]}{v[14:]}")  # region + sequence: a typo in the date
            keys.add(f"Ic:{v[6:]}")  # date + sequence: a typo in the region
    for authority, number in r.local:
        keys.add(f"L:{authority}:{number}")
    if r.phone and len(r.phone) >= 7:
        keys.add(f"P:{r.phone}")
    return keys


def name_date_keys(r: MatchRecord) -> set[str]:
    keys: set[str] = set()
    name, dob = r.name, r.birth_date
    if name is not None:
        if dob is not None:
            keys.add(f"NY:{name.sorted_key}:{dob.year}")
            keys.add(f"NMD:{name.sorted_key}:{dob.month:02d}{dob.day:02d}")
            keys.add(f"FD:{name.fuzzy}:{dob.isoformat()}")
            keys.add(f"SD:{name.family_key}:{dob.isoformat()}")
        else:
            keys.add(f"N:{name.sorted_key}")
    return keys


def phonetic_date_keys(r: MatchRecord) -> set[str]:
    if r.birth_date is None:
        return set()
    day = r.birth_date.isoformat()
    return {f"PD:{_soundex(t)}:{day}" for t in _tokens(r)}


def date_initial_keys(r: MatchRecord) -> set[str]:
    """Birth date + the given name's initial: a name typed anew. A Latin-script name gives every token's
    initial (systems disagree on which is the family name); a Chinese one not its family name's: a few
    letters start half the Chinese family names, and its order is known."""
    tokens = _tokens(r)
    if r.birth_date is None or not tokens or r.name is None:
        return set()
    day = r.birth_date.isoformat()
    if r.name.han:
        return {f"DI:{day}:{tokens[-1][0]}"}
    return {f"DI:{day}:{t[0]}" for t in tokens if t}


def postcode_name_keys(r: MatchRecord) -> set[str]:
    if not r.postcode:
        return set()
    return {f"PC:{r.postcode}:{_soundex(t)}" for t in _tokens(r)}


# The passes, in the order the batch runs them (one at a time: a pass's blocks are dropped before the next).
PASSES: tuple[tuple[str, Callable[[MatchRecord], set[str]]], ...] = (
    ("identifiers", identifier_keys), ("name + birth date", name_date_keys),
    ("phonetic name + birth date", phonetic_date_keys), ("birth date + initial", date_initial_keys),
    ("postcode + name", postcode_name_keys),
)
# Version of the keys this module makes, kept with each stored record (empi_source_record.keys_version):
# 1 the name + birth date and identifier keys; 2 the passes above (store.rekey brings older records up).
KEYS_VERSION = 2
WINDOW = 5  # sorted neighbourhood: each record meets the next WINDOW - 1 in name order


def blocking_keys(r: MatchRecord) -> set[str]:
    """Every key of every pass (the sorted neighbourhood is the batch's only)."""
    keys: set[str] = set()
    for _, fn in PASSES:
        keys |= fn(r)
    return keys


def neighbourhood_key(r: MatchRecord) -> str:
    """What the sorted neighbourhood sorts on: the name, tokens in alphabetical order (either order of
    family and given name), then the birth date so that namesakes born near each other are neighbours."""
    name = r.name.sorted_key if r.name is not None else "~"
    return f"{name}|{r.birth_date.isoformat() if r.birth_date else ''}"
