"""Field comparators: each turns a pair of values into an agreement level (Fellegi–Sunter gamma).

Levels are ordered from strongest agreement (0) to disagreement (last); `MISSING` (-1) means one
side has no value, which the model treats as no evidence either way. Every level has its own
m- and u-probability, learned by EM (fellegi_sunter.py), so "one digit wrong in the ID" earns
less than an exact ID and far more than a different one.
"""

from __future__ import annotations

from datetime import date

import jellyfish

from imaging_common.empi.record import MatchRecord

MISSING = -1


def near_string(a: str, b: str) -> bool:
    """Same length and one substituted character or two adjacent characters swapped."""
    if len(a) != len(b):
        return False
    diffs = [i for i in range(len(a)) if a[i] != b[i]]
    if len(diffs) == 1:
        return True
    return len(diffs) == 2 and diffs[1] == diffs[0] + 1 and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]]


# ---- name ----------------------------------------------------------------------------------
NAME_LEVELS = ("exact", "pinyin", "homophone", "similar", "different")
NAME_EXACT, NAME_PINYIN, NAME_HOMOPHONE, NAME_SIMILAR, NAME_DIFFERENT = range(5)


def compare_name(a: MatchRecord, b: MatchRecord) -> int:
    x, y = a.name, b.name
    if x is None or y is None:
        return MISSING
    if x.han and y.han:
        if x.han == y.han:
            return NAME_EXACT
        if x.key == y.key:
            return NAME_HOMOPHONE  # same sound, different characters: a typo or another person
    elif x.key == y.key or x.sorted_key == y.sorted_key:
        # One side (or both) in Latin script: the pinyin is all we can compare.
        return NAME_EXACT if not (x.han or y.han) else NAME_PINYIN
    if x.fuzzy == y.fuzzy or jellyfish.jaro_winkler_similarity(x.key, y.key) >= 0.93:
        return NAME_SIMILAR
    if not (x.han or y.han) and latin_tokens_close(x.pinyin.split(" "), y.pinyin.split(" ")):
        return NAME_SIMILAR
    return NAME_DIFFERENT


def close_token(a: str, b: str) -> bool:
    """One typo apart (a wrong, missing or extra letter, two letters swapped), two in words of five letters
    or more."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 2:
        return False
    d = jellyfish.damerau_levenshtein_distance(a, b)
    return d <= 1 or (d == 2 and min(len(a), len(b)) >= 5)


def latin_tokens_close(x: list[str], y: list[str]) -> bool:
    """Two Latin-script names whose tokens pair up one typo apart, in either order (family and given
    names are swapped between systems); a token missing on one side pairs with nothing, a token typed
    in two (SOPH IE) pairs as one."""
    if max(len(x), len(y)) > 4:
        return False
    from itertools import permutations

    for u in _joined(x):
        for v in _joined(y):
            short, long_ = (u, v) if len(u) <= len(v) else (v, u)
            if any(all(close_token(a, b) for a, b in zip(short, order, strict=False))
                   for order in permutations(long_, len(short))):
                return True
    return False


def _joined(tokens: list[str]) -> list[list[str]]:
    """The tokens as written, and with each pair of neighbours joined (a space typed inside a name)."""
    return [tokens, *(tokens[:i] + [tokens[i] + tokens[i + 1]] + tokens[i + 2:] for i in range(len(tokens) - 1))]


def share_a_name(a: MatchRecord, b: MatchRecord) -> bool:
    """Two Latin-script names of which one part agrees within a typo (the family name, or a given name)
    and another part was replaced: SMITH JONATHAN / SMITH CALEB."""
    if a.name is None or b.name is None:
        return False
    return any(close_token(x, y) for x in a.name.pinyin.split(" ") for y in b.name.pinyin.split(" ")
               if min(len(x), len(y)) >= 2)


# ---- birth date ----------------------------------------------------------------------------
DOB_LEVELS = ("exact", "typo-or-swap", "different")
DOB_EXACT, DOB_NEAR, DOB_DIFFERENT = range(3)


def compare_birth_date(a: MatchRecord, b: MatchRecord) -> int:
    x, y = a.birth_date, b.birth_date
    if x is None or y is None:
        return MISSING
    if x == y:
        return DOB_EXACT
    if x.year == y.year and x.month == y.day and x.day == y.month:
        return DOB_NEAR  # day and month swapped (US/EU order confusion)
    if near_string(_digits(x), _digits(y)):
        return DOB_NEAR  # one digit typed wrong or two swapped
    return DOB_DIFFERENT


def _digits(d: date) -> str:
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


# ---- sex -----------------------------------------------------------------------------------
SEX_LEVELS = ("same", "different")


def compare_sex(a: MatchRecord, b: MatchRecord) -> int:
    if a.sex is None or b.sex is None:
        return MISSING
    return 0 if a.sex == b.sex else 1


# ---- national identifiers ------------------------------------------------------------------
ID_LEVELS = ("exact", "one-typo", "different")
ID_EXACT, ID_NEAR, ID_DIFFERENT = range(3)


def compare_national_id(a: MatchRecord, b: MatchRecord) -> int:
    """Best level over the authorities both records have a number from."""
    best = MISSING
    for kind, x in a.national.items():
        y = b.national.get(kind)
        if y is None:
            continue
        if x.value == y.value:
            return ID_EXACT
        # Both valid and different: two people (MOD 11-2 catches every single typo and swap).
        level = ID_NEAR if (not (x.valid and y.valid) and near_string(x.value, y.value)) else ID_DIFFERENT
        best = level if best == MISSING else min(best, level)
    return best


def personal_number_agrees(a: MatchRecord, b: MatchRecord) -> bool:
    """The same medical-insurance (social security) number: issued to one person, unlike a hospital card a
    parent may bring for the other twin; a resident-ID-shaped one is already a national ID (record.py)."""
    shared = a.local & b.local
    return any(kind == "medical-insurance" for kind, _ in shared)


def personal_number_near(a: MatchRecord, b: MatchRecord) -> bool:
    """Medical-insurance numbers one wrong digit or one swap apart (no check digit tells a typo), not
    consecutive ones (number_typo)."""
    x = [n for kind, n in a.local if kind == "medical-insurance"]
    y = [n for kind, n in b.local if kind == "medical-insurance"]
    return any(number_typo(u, v) for u in x for v in y)


def both_valid_national_ids_differ(a: MatchRecord, b: MatchRecord) -> bool:
    for kind, x in a.national.items():
        y = b.national.get(kind)
        if y is not None and x.valid and y.valid and x.value != y.value:
            return True
    return False


# ---- local identifiers (hospital card, HIS patient ID, medical-insurance number) ----------------
LOCAL_LEVELS = ("same", "one-typo", "different")
LOCAL_SAME, LOCAL_NEAR, LOCAL_DIFFERENT = range(3)


def number_typo(a: str, b: str) -> bool:
    """One wrong digit or two neighbours swapped, but not numbers that differ in the last digit only:
    numbers issued one after the other (twins registered together) differ there."""
    return near_string(a, b) and a[:-1] != b[:-1]


def compare_local_id(a: MatchRecord, b: MatchRecord) -> int:
    if not a.local or not b.local:
        return MISSING
    if a.local & b.local:
        return LOCAL_SAME
    best = MISSING  # no number of the same kind on both sides: nothing to compare
    for kind, x in a.local:
        for kind_b, y in b.local:
            if kind == kind_b:
                if number_typo(x, y):
                    return LOCAL_NEAR
                best = LOCAL_DIFFERENT
    return best


# ---- phone ---------------------------------------------------------------------------------
PHONE_LEVELS = ("exact", "one-typo", "different")


def compare_phone(a: MatchRecord, b: MatchRecord) -> int:
    x, y = a.phone, b.phone
    if not x or not y:
        return MISSING
    if x == y:
        return 0
    return 1 if near_string(x, y) else 2


# ---- address -------------------------------------------------------------------------------
ADDRESS_LEVELS = ("same", "similar", "different")


def compare_address(a: MatchRecord, b: MatchRecord) -> int:
    if not a.address or not b.address:
        return MISSING
    if a.address == b.address:
        return 0
    x, y = a.address_grams, b.address_grams
    inter = len(x & y)
    # Overlap coefficient: an address written with or without the province is the same address.
    score = inter / min(len(x), len(y))
    if score >= 0.85:
        return 0
    return 1 if score >= 0.5 else 2


# ---- postcode ------------------------------------------------------------------------------
POSTCODE_LEVELS = ("same", "one-typo", "different")


def compare_postcode(a: MatchRecord, b: MatchRecord) -> int:
    """Weighed by EM like any field (FEBRL's suburbs and streets are replaced, the postcode stays); Chinese
    registers rarely carry one, and a missing one says nothing."""
    if not a.postcode or not b.postcode:
        return MISSING
    if a.postcode == b.postcode:
        return 0
    return 1 if near_string(a.postcode, b.postcode) else 2


def postcode_agrees(a: MatchRecord, b: MatchRecord) -> bool:
    """The same postcode: with an address that agrees in part (the street, not the suburb), the same home."""
    return bool(a.postcode and a.postcode == b.postcode)


# The comparison vector, in this order; names are used in weights files and explanations.
FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("name", NAME_LEVELS), ("birth_date", DOB_LEVELS), ("sex", SEX_LEVELS), ("national_id", ID_LEVELS),
    ("local_id", LOCAL_LEVELS), ("phone", PHONE_LEVELS), ("address", ADDRESS_LEVELS), ("postcode", POSTCODE_LEVELS),
)
_COMPARATORS = (compare_name, compare_birth_date, compare_sex, compare_national_id, compare_local_id,
                compare_phone, compare_address, compare_postcode)


def compare(a: MatchRecord, b: MatchRecord) -> tuple[int, ...]:
    # Spelled out (as _COMPARATORS): a batch of a million records compares ten million pairs.
    return (compare_name(a, b), compare_birth_date(a, b), compare_sex(a, b), compare_national_id(a, b),
            compare_local_id(a, b), compare_phone(a, b), compare_address(a, b), compare_postcode(a, b))
