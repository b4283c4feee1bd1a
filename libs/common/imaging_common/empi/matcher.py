"""Matching: one record against an index (online registration), or whole files (batch onboarding).

`MatchIndex` keeps records and their blocking keys in memory; `match()` scores the candidates
that share a key and returns them best first with their band. `dedupe()` and `link_files()`
compare every blocked pair of one or two record sets; they estimate the Fellegi–Sunter
parameters by EM on those pairs first (the FS way: learned from the data at hand), falling back
to the shipped defaults when there are too few pairs to learn from.

An exact or pinyin name agreement is weighted by the name's frequency among the records at hand
(the index's, or the files'): frequencies.py. A `Scorer` used without frequencies (the
database-backed path) weighs every name agreement of a level alike, as the model says.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import combinations

from imaging_common.empi.bands import Band, Thresholds, band_for
from imaging_common.empi.blocking import blocking_keys
from imaging_common.empi.comparators import NAME_EXACT, NAME_PINYIN, compare
from imaging_common.empi.fellegi_sunter import FellegiSunterModel
from imaging_common.empi.frequencies import HAN, PINYIN, NameFrequencies
from imaging_common.empi.names import NameForm
from imaging_common.empi.record import MatchRecord

# A block larger than this (e.g. a very common name with no birth date) is too weak to compare
# all against all; its pairs are found, if at all, through the other keys.
MAX_BLOCK = 200
MIN_PAIRS_FOR_EM = 5000  # fewer pairs than this: EM is poorly identified, the defaults do better


@dataclass(frozen=True)
class ScoredPair:
    left: MatchRecord
    right: MatchRecord
    gamma: tuple[int, ...]
    weight: float
    band: Band
    reason: str | None = None
    name_bits: float = 0.0  # frequency weight of an exact or pinyin name agreement, included in `weight`

    def explain(self, model: FellegiSunterModel) -> dict[str, object]:
        fields = model.explain(self.gamma)
        if self.name_bits:
            fields["name"] = {**fields["name"], "weight": round(fields["name"]["weight"] + self.name_bits, 2),
                              "frequency_bits": round(self.name_bits, 2)}
        return {"weight": round(self.weight, 2), "band": self.band.value, "reason": self.reason, "fields": fields}


class Scorer:
    def __init__(self, model: FellegiSunterModel | None = None, thresholds: Thresholds | None = None):
        self.model = model or FellegiSunterModel.default()
        self.thresholds = thresholds or Thresholds()

    def score(self, a: MatchRecord, b: MatchRecord, frequencies: NameFrequencies | None = None) -> ScoredPair:
        """`frequencies`: name counts of the records matched against, for value-specific name weights."""
        gamma = compare(a, b)
        bits = 0.0
        if frequencies is not None and (agreed := agreed_name(a, b, gamma)) is not None:
            name, script = agreed
            bits = frequencies.bits(name, self.model.name_frequency_ref, exclude=1, script=script)  # b is counted
        return _scored(a, b, gamma, self.model, self.thresholds, bits)


def agreed_name(a: MatchRecord, b: MatchRecord, gamma: tuple[int, ...]) -> tuple[NameForm, str] | None:
    """The name two records agree on and the script its frequency is counted in; None unless they agree
    exactly or by pinyin (a name that agrees only by sound among characters is the twin guard's)."""
    if a.name is None or b.name is None:
        return None
    if gamma[0] == NAME_EXACT:
        return a.name, HAN if a.name.han and b.name.han else PINYIN
    if gamma[0] == NAME_PINYIN:
        return (a.name if a.name.han else b.name), PINYIN  # the characters' side knows the syllables
    return None


def _scored(a: MatchRecord, b: MatchRecord, gamma: tuple[int, ...], model: FellegiSunterModel,
            thresholds: Thresholds, bits: float) -> ScoredPair:
    weight = model.weight(gamma) + bits
    band, reason = band_for(weight, gamma, a, b, thresholds, bits)
    return ScoredPair(a, b, gamma, weight, band, reason, bits)


class MatchIndex:
    """Records by blocking key, for matching one incoming record quickly."""

    def __init__(self, scorer: Scorer | None = None):
        self.scorer = scorer or Scorer()
        self._records: dict[str, MatchRecord] = {}
        self._keys: dict[str, set[str]] = {}
        # Lists, not sets: most blocks hold one or two records, and 800,000 small sets cost memory and time.
        self._blocks: dict[str, list[str]] = defaultdict(list)
        self.frequencies = NameFrequencies()

    def __len__(self) -> int:
        return len(self._records)

    def add(self, record: MatchRecord) -> None:
        if record.ref in self._records:
            self.remove(record.ref)
        keys = blocking_keys(record)
        self._records[record.ref] = record
        self.frequencies.add(record)
        self._keys[record.ref] = keys
        for key in keys:
            self._blocks[key].append(record.ref)

    def remove(self, ref: str) -> None:
        gone = self._records.pop(ref, None)
        if gone is not None:
            self.frequencies.remove(gone)
        for key in self._keys.pop(ref, ()):
            block = self._blocks.get(key)
            if block is not None:
                if ref in block:
                    block.remove(ref)
                if not block:
                    del self._blocks[key]

    def candidates(self, record: MatchRecord) -> set[str]:
        found: set[str] = set()
        for key in blocking_keys(record):
            block = self._blocks.get(key)
            if block and len(block) <= MAX_BLOCK:
                found.update(block)
        found.discard(record.ref)
        return found

    def match(self, record: MatchRecord, *, include_new: bool = False) -> list[ScoredPair]:
        """Candidates scored, best first; band NEW ones only when asked."""
        scored = [self.scorer.score(record, self._records[ref], self.frequencies) for ref in self.candidates(record)]
        if not include_new:
            scored = [s for s in scored if s.band is not Band.NEW]
        scored.sort(key=lambda s: s.weight, reverse=True)
        return scored


def candidate_pairs(
    left: Sequence[MatchRecord], right: Sequence[MatchRecord] | None = None
) -> Iterator[tuple[int, int]]:
    """Index pairs sharing a blocking key: within `left` (dedupe) or across `left` x `right` (link)."""
    blocks: dict[str, list[int]] = defaultdict(list)
    offset = len(left)
    for i, rec in enumerate(left):
        for key in blocking_keys(rec):
            blocks[key].append(i)
    if right is not None:
        for j, rec in enumerate(right):
            for key in blocking_keys(rec):
                blocks[key].append(offset + j)
    pairs: set[tuple[int, int]] = set()
    for members in blocks.values():
        if 2 <= len(members) <= MAX_BLOCK:
            pairs.update(combinations(members, 2))  # members are in increasing order: i < j
    for i, j in sorted(pairs):
        if right is None:
            yield i, j
        elif i < offset <= j:  # linking two files: only pairs across them
            yield i, j - offset


def _score_pairs(
    pairs: list[tuple[MatchRecord, MatchRecord]], model: FellegiSunterModel | None, estimate: bool,
    thresholds: Thresholds | None, frequencies: NameFrequencies,
) -> tuple[list[ScoredPair], FellegiSunterModel]:
    gammas = [compare(a, b) for a, b in pairs]
    if model is None:
        model = FellegiSunterModel.default()
        if estimate and len(gammas) >= MIN_PAIRS_FOR_EM:
            model = FellegiSunterModel.estimate(gammas, start=model)
            # The name levels' u just estimated belong to these records' names.
            model.name_frequency_ref = frequencies.references()
    if model.name_frequency_ref is None:  # a model from before frequencies: these records' reference
        model = replace(model, name_frequency_ref=frequencies.references())
    th = thresholds or Thresholds()
    bits_of: dict[tuple[NameForm, str], float] = {}  # one frequency look-up per distinct name
    out = []
    for (a, b), gamma in zip(pairs, gammas, strict=True):
        bits = 0.0
        agreed = agreed_name(a, b, gamma)
        if agreed is not None:
            if agreed not in bits_of:
                bits_of[agreed] = frequencies.bits(agreed[0], model.name_frequency_ref, exclude=2, script=agreed[1])
            bits = bits_of[agreed]
        out.append(_scored(a, b, gamma, model, th, bits))
    return out, model


def dedupe(
    records: Sequence[MatchRecord], *, model: FellegiSunterModel | None = None, estimate: bool = True,
    thresholds: Thresholds | None = None,
) -> tuple[list[ScoredPair], FellegiSunterModel]:
    """Every blocked pair of one record set, scored and banded; and the model used."""
    pairs = [(records[i], records[j]) for i, j in candidate_pairs(records)]
    return _score_pairs(pairs, model, estimate, thresholds, NameFrequencies(records))


def link_sets(
    left: Sequence[MatchRecord], right: Sequence[MatchRecord], *, model: FellegiSunterModel | None = None,
    estimate: bool = True, thresholds: Thresholds | None = None,
) -> tuple[list[ScoredPair], FellegiSunterModel]:
    pairs = [(left[i], right[j]) for i, j in candidate_pairs(left, right)]
    return _score_pairs(pairs, model, estimate, thresholds, NameFrequencies([*left, *right]))


def clusters(refs: Iterable[str], links: Iterable[tuple[str, str]]) -> list[set[str]]:
    """Connected components of auto-links (union-find): one set per person."""
    parent: dict[str, str] = {r: r for r in refs}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in links:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[rb] = ra
    groups: dict[str, set[str]] = defaultdict(set)
    for r in parent:
        groups[find(r)].add(r)
    return list(groups.values())
