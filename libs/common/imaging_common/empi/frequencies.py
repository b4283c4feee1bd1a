"""Name frequencies, for value-specific (frequency-based) agreement weights (Winkler).

Two records that agree on "王伟" say much less than two that agree on "汤炜婕": many different
people are called 王伟. In Fellegi–Sunter terms the u-probability of agreeing on a name is not
one number but depends on the value: u(v) is proportional to the frequency f(v) of the name
among the people being matched. The EM model (fellegi_sunter.py) estimates one u for the
exact-name level, averaged over the agreeing pairs of different people; those pairs agree on v
about f(v)^2 as often, so that u belongs to the reference frequency

    f_ref = sum f(v)^3 / sum f(v)^2          (over the distinct names seen)

and the value-specific u is u(v) = u_exact * f(v) / f_ref. The weight of an exact name agreement
on v is log2(m_exact / u(v)) = the model's weight + log2(f_ref / f(v)): positive for a name
rarer than the typical coinciding one, negative for a commoner one (bounded by MAX_BITS).

Two scripts are counted. Characters ("H"): the names written in Chinese characters, for two
records that agree on the characters. Pinyin ("L"): every name as it sounds (the characters
read as pinyin, Latin-script names as written), for a pinyin-only record that agrees with
characters by sound, or two Latin-script names; "ZHANG WEI" is as common as 张伟, 张维 and 张玮
together. Each has its own reference frequency.

f(v) is estimated from the records at hand (the index, or the file being deduplicated), not
from a shipped table, because name fashions differ between regions and generations. A full name
is seen too rarely to count it directly (a rare name seen twice is the same person twice), so
f(v) = f(family) x f(given): the family name and the given name counted separately; a given
name is at least as frequent as the product of its characters' (syllables') frequencies (a
given name seen only in the pair being scored is not thereby unique), and as frequent as
counted when it is commoner than that. The pair's own records are left out of the counts (u is
about other people having the name), with add-one smoothing for values never seen.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from imaging_common.empi.names import NameForm, pinyin_syllables, split_han_name
from imaging_common.empi.record import MatchRecord

MAX_BITS = 10.0  # a frequency estimate is never trusted beyond a factor 1024 either way
# Below this many names counted (a new hospital, a small file), a name's share says nothing about
# the population: with one record counted, every name is "everyone's". An agreeing name then weighs
# as the model's average coinciding name (0 bits), as before frequencies were counted.
MIN_NAMES = 1000
HAN, PINYIN = "H", "L"


@lru_cache(maxsize=262144)
def name_parts(name: NameForm, script: str) -> tuple[str, str, tuple[str, ...]] | None:
    """(family, given, units of the given name) of a name in one script; None if it has no such form."""
    if script == HAN:
        if not name.han:
            return None
        family, given = split_han_name(name.han)
        return family, given, tuple(given)
    family, _, given = name.pinyin.partition(" ")
    if name.han:  # characters read as pinyin: the syllables are known
        return family, given, tuple(pinyin_syllables(split_han_name(name.han)[1]))
    return family, given, tuple(given.split())


def count_keys(name: NameForm) -> Counter[tuple[str, str, str]]:
    """What one record's name adds to the counts, as (script, kind, value): the form a database keeps
    them in (empi/store.py), summed over the records; kinds family, given, length, unit."""
    out: Counter[tuple[str, str, str]] = Counter()
    for script in (HAN, PINYIN):
        parts = name_parts(name, script)
        if parts is None:
            continue
        family, given, units = parts
        out.update([(script, "family", family), (script, "given", given), (script, "length", str(len(units)))])
        out.update((script, "unit", unit) for unit in units)
    return out


def _bump(counter: Counter[Any], key: Any, step: int) -> None:
    counter[key] += step
    if counter[key] <= 0:  # a record left the index: distinct counts must not keep it
        del counter[key]


class NameFrequencies:
    """Counts of family names, given names and their characters (syllables) over a set of records."""

    @classmethod
    def from_counts(cls, counts: dict[tuple[str, str, str], int], totals: dict[str, tuple[int, int]],
                    distinct_units: int) -> NameFrequencies:
        """Counts kept elsewhere (a database): those of the names to be looked up (count_keys), the
        names and units per script (`totals`: script -> (names, units)) and the distinct units."""
        freqs = cls()
        kinds = {"family": freqs.family, "given": freqs.given, "unit": freqs.units}
        for (script, kind, value), n in counts.items():
            if kind == "length":
                freqs.length[script, int(value)] = n
            elif kind in kinds:
                kinds[kind][script, value] = n
        for script, (names, units) in totals.items():
            freqs.total[script], freqs.unit_total[script] = names, units
        freqs._distinct_units = distinct_units
        return freqs

    def __init__(self, records: Iterable[MatchRecord] = ()):
        self._distinct_units: int | None = None  # set by from_counts: units not all loaded
        self.total: Counter[str] = Counter()  # names per script
        self.family: Counter[tuple[str, str]] = Counter()
        self.given: Counter[tuple[str, str]] = Counter()
        self.units: Counter[tuple[str, str]] = Counter()  # given-name characters / syllables
        self.unit_total: Counter[str] = Counter()
        self.length: Counter[tuple[str, int]] = Counter()
        self.full: Counter[tuple[str, str, str, tuple[str, ...]]] = Counter()  # distinct names, for f_ref
        for r in records:
            self.add(r)

    def _update(self, name: NameForm | None, step: int) -> None:
        if name is None:
            return
        for (script, kind, value), n in count_keys(name).items():
            if kind == "length":
                _bump(self.length, (script, int(value)), step * n)
            else:
                _bump({"family": self.family, "given": self.given, "unit": self.units}[kind], (script, value), step * n)
        for script in (HAN, PINYIN):
            if (parts := name_parts(name, script)) is not None:
                self.total[script] += step
                self.unit_total[script] += step * len(parts[2])
                _bump(self.full, (script, *parts), step)

    def add(self, record: MatchRecord) -> None:
        self._update(record.name, 1)

    def remove(self, record: MatchRecord) -> None:
        self._update(record.name, -1)

    def frequency(self, name: NameForm, exclude: int = 0, script: str = HAN) -> float | None:
        """Share of people with this name. `exclude`: records of the pair being scored that are counted
        here (2 in a file, 1 in an index): u is about OTHER people having the name."""
        parts = name_parts(name, script)
        return None if parts is None else self._frequency(script, *parts, exclude=exclude)

    def _frequency(self, script: str, family: str, given: str, units: tuple[str, ...], exclude: int = 0) -> float:
        n = max(self.total[script] - exclude, 0) + 1
        f_family = (max(self.family[script, family] - exclude, 0) + 1) / n
        # The given name as its characters would make it; as counted when it is commoner than that
        # (子涵 is a fashion, not a coincidence). Never below the characters: a given name seen only
        # in this pair is not thereby unique.
        prior = (self.length[script, len(units)] + 1) / n
        distinct = len(self.units) if self._distinct_units is None else self._distinct_units
        units_n = self.unit_total[script] + distinct + 1
        for unit in units:
            prior *= (self.units[script, unit] + 1) / units_n
        f_given = max(prior, (self.given[script, given] - exclude) / n)
        return min(f_family * f_given, 1.0)

    def reference(self, script: str = HAN) -> float | None:
        """f_ref = sum f^3 / sum f^2 over the distinct names seen (None when there are none)."""
        s2 = s3 = 0.0
        for sc, family, given, units in self.full:
            if sc != script:
                continue
            f = self._frequency(script, family, given, units)
            s2 += f * f
            s3 += f * f * f
        return s3 / s2 if s2 else None

    def references(self) -> dict[str, float]:
        return {script: ref for script in (HAN, PINYIN) if (ref := self.reference(script)) is not None}

    def bits(self, name: NameForm | None, references: dict[str, float] | None, exclude: int = 0,
             script: str = HAN) -> float:
        """log2(f_ref / f(name)): what agreeing on this very name adds to the level's weight."""
        ref = (references or {}).get(script)
        if self.total[script] - exclude < MIN_NAMES:
            return 0.0
        f = self.frequency(name, exclude, script) if name is not None and ref else None
        if not f or not ref:
            return 0.0
        return max(-MAX_BITS, min(MAX_BITS, math.log2(ref / f)))
