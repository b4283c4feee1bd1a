"""Blocking: which records are worth comparing. A pair is a candidate when it shares any key.

Each key is designed so that one kind of error still leaves some key shared:
- an ID number with one wrong digit keeps one of three overlapping parts of it;
- a birth-date typo keeps name + year or name + month/day; a day/month swap keeps name + year;
- a homophone or a pinyin-only name keeps the pinyin key; a southern-accent spelling the fuzzy one;
- a new phone number or a missing ID keeps the name and birth date.
Keys are plain strings, so the same function feeds the in-memory index and the database table.
"""

from __future__ import annotations

from imaging_common.empi.record import MatchRecord


def blocking_keys(r: MatchRecord) -> set[str]:
    keys: set[str] = set()
    for kind, ident in r.national.items():
        v = ident.value
        keys.add(f"I:{kind.value}:{v}")
        if len(v) == 18:
            keys.add(f"Ia:{v[:12]}")  # region + year + month: a typo in day/sequence/check
            keys.add(f"Ib:{v[:6]}{v[12:]}")  # region + day + sequence: a typo in year/month
            keys.add(f"Ic:{v[6:]}")  # date + sequence: a typo in the region
    for authority, number in r.local:
        keys.add(f"L:{authority}:{number}")
    if r.phone and len(r.phone) >= 7:
        keys.add(f"P:{r.phone}")
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
