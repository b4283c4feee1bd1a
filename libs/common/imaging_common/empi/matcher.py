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

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np

from imaging_common.empi.bands import Band, Thresholds, band_for
from imaging_common.empi.blocking import PASSES, WINDOW, blocking_keys, neighbourhood_key
from imaging_common.empi.comparators import NAME_EXACT, NAME_PINYIN, compare
from imaging_common.empi.fellegi_sunter import FellegiSunterModel
from imaging_common.empi.frequencies import HAN, PINYIN, NameFrequencies
from imaging_common.empi.names import NameForm
from imaging_common.empi.record import MatchRecord

# A block larger than this (e.g. a very common name with no birth date) is too weak to compare
# all against all; its pairs are found, if at all, through the other keys.
MAX_BLOCK = 200
# Fewer records than this: EM is poorly identified, the defaults do better. (Counted in records, not
# candidate pairs: the sorted neighbourhood gives every record WINDOW - 1 pairs whatever the file.)
MIN_RECORDS_FOR_EM = 5000
# ...unless the names are mostly in Latin script (foreign patients, legacy files of other systems): the
# defaults were fitted on Chinese registers, whose errors (homophones, pinyin-only entries, ID numbers with
# a check digit) are not theirs (whole name parts replaced, numbers without a check digit). EM on the
# file's own pairs does better there from a few hundred records on (FEBRL1, 1,000 records: F1 0.93 with
# the defaults, 0.99 with its own weights).
MIN_RECORDS_FOR_EM_LATIN = 500


def latin_share(records: Iterable[MatchRecord]) -> float:
    """The share of named records whose name is in Latin script only."""
    named = latin = 0
    for r in records:
        if r.name is not None:
            named += 1
            latin += not r.name.han
    return latin / named if named else 0.0


def min_records_for_em(records: Sequence[MatchRecord]) -> int:
    """How many records EM needs before the file's own weights replace the shipped defaults."""
    return MIN_RECORDS_FOR_EM_LATIN if latin_share(records) > 0.5 else MIN_RECORDS_FOR_EM


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


def candidate_array(
    left: Sequence[MatchRecord], right: Sequence[MatchRecord] | None = None, *,
    progress: Callable[[str, int], None] | None = None,
) -> np.ndarray:
    """Index pairs (i, j) sharing a key of any blocking pass or neighbours in name order, as an (n, 2)
    array sorted by i then j: within `left` (dedupe, i < j) or across `left` x `right` (link, j in
    `right`). One pass at a time, and pairs kept as integers: a million records fit in memory."""
    n_left = len(left)
    records: Sequence[MatchRecord] = left if right is None else [*left, *right]
    total = len(records)
    codes: list[np.ndarray] = []

    def keep(found: list[int]) -> None:
        arr = np.fromiter(found, dtype=np.int64, count=len(found))
        if right is not None:  # linking two files: only pairs across them
            arr = arr[(arr // total < n_left) & (arr % total >= n_left)]
        codes.append(np.unique(arr))

    for label, keys_of in PASSES:
        blocks: dict[str, list[int]] = defaultdict(list)
        for i, rec in enumerate(records):
            for key in keys_of(rec):
                blocks[key].append(i)
        found: list[int] = []
        for members in blocks.values():
            if len(members) == 2:
                found.append(members[0] * total + members[1])
            elif 2 < len(members) <= MAX_BLOCK:
                found.extend(a * total + b for a, b in combinations(members, 2))  # members increase: a < b
        del blocks
        keep(found)
        if progress is not None:
            progress(label, len(found))
    # Sorted neighbourhood on the normalised name.
    order = sorted(range(total), key=lambda i: neighbourhood_key(records[i]))
    found = []
    for pos, i in enumerate(order):
        for j in order[pos + 1:pos + WINDOW]:
            found.append(i * total + j if i < j else j * total + i)
    keep(found)
    if progress is not None:
        progress("sorted neighbourhood", len(found))
    merged = np.unique(np.concatenate(codes)) if codes else np.zeros(0, dtype=np.int64)
    pairs = np.stack([merged // total, merged % total], axis=1)
    if right is not None:
        pairs[:, 1] -= n_left
    return pairs


CHUNK = 1 << 20  # pairs turned into Python ints at a time: ten million pairs as lists would take gigabytes


def _chunked(values: np.ndarray) -> Iterator[int]:
    for start in range(0, len(values), CHUNK):
        yield from values[start:start + CHUNK].tolist()


def _index_pairs(idx: np.ndarray) -> Iterator[tuple[int, int]]:
    for start in range(0, len(idx), CHUNK):
        part = idx[start:start + CHUNK]
        yield from zip(part[:, 0].tolist(), part[:, 1].tolist(), strict=True)


def candidate_pairs(
    left: Sequence[MatchRecord], right: Sequence[MatchRecord] | None = None
) -> Iterator[tuple[int, int]]:
    """Index pairs sharing a blocking key: within `left` (dedupe) or across `left` x `right` (link)."""
    yield from _index_pairs(candidate_array(left, right))


def _score_pairs(
    left: Sequence[MatchRecord], right: Sequence[MatchRecord] | None, idx: np.ndarray,
    model: FellegiSunterModel | None, estimate: bool, thresholds: Thresholds | None, frequencies: NameFrequencies,
    keep: Iterable[Band] | None = None, progress: Callable[[int, int], None] | None = None,
    tally: Counter[Band] | None = None,
) -> tuple[list[ScoredPair], FellegiSunterModel]:
    """Compare every candidate pair once (its comparison vector kept as a pattern number: a million
    records' pairs fit in memory), estimate the model on the pattern counts, then band every pair;
    only pairs of the `keep` bands (default all) become ScoredPair objects."""
    other = left if right is None else right
    n_records = len(left) + (len(right) if right is not None else 0)
    pattern_of: dict[tuple[int, ...], int] = {}
    pattern_ids = np.empty(len(idx), dtype=np.int32)
    step = 200_000
    for k, (i, j) in enumerate(_index_pairs(idx)):
        gamma = compare(left[i], other[j])
        pid = pattern_of.get(gamma)
        if pid is None:
            pid = pattern_of[gamma] = len(pattern_of)
        pattern_ids[k] = pid
        if progress is not None and k % step == step - 1:
            progress(k + 1, len(idx))
    if progress is not None:
        progress(len(idx), len(idx))
    patterns = list(pattern_of)
    if model is None:
        model = FellegiSunterModel.default()
        if estimate and n_records >= min_records_for_em([*left, *(right or ())]) and len(idx):
            counts = np.bincount(pattern_ids, minlength=len(patterns))
            model = FellegiSunterModel.estimate(dict(zip(patterns, counts.tolist(), strict=True)), start=model)
            # The name levels' u just estimated belong to these records' names.
            model.name_frequency_ref = frequencies.references()
    if model.name_frequency_ref is None:  # a model from before frequencies: these records' reference
        model = replace(model, name_frequency_ref=frequencies.references())
    th = thresholds or Thresholds()
    wanted = set(keep) if keep is not None else set(Band)
    pattern_weight = [model.weight(g) for g in patterns]
    bits_of: dict[tuple[NameForm, str], float] = {}  # one frequency look-up per distinct name
    out = []
    for (i, j), pid in zip(_index_pairs(idx), _chunked(pattern_ids), strict=True):
        a, b = left[i], other[j]
        gamma = patterns[pid]
        bits = 0.0
        if gamma[0] in (NAME_EXACT, NAME_PINYIN):
            agreed = agreed_name(a, b, gamma)
            if agreed is not None:
                if agreed not in bits_of:
                    bits_of[agreed] = frequencies.bits(agreed[0], model.name_frequency_ref, exclude=2,
                                                       script=agreed[1])
                bits = bits_of[agreed]
        weight = pattern_weight[pid] + bits
        band, reason = band_for(weight, gamma, a, b, th, bits)
        if tally is not None:
            tally[band] += 1
        if band in wanted:
            out.append(ScoredPair(a, b, gamma, weight, band, reason, bits))
    return out, model


def dedupe(
    records: Sequence[MatchRecord], *, model: FellegiSunterModel | None = None, estimate: bool = True,
    thresholds: Thresholds | None = None, keep: Iterable[Band] | None = None,
    progress: Callable[[str, int, int], None] | None = None, tally: Counter[Band] | None = None,
) -> tuple[list[ScoredPair], FellegiSunterModel]:
    """Every blocked pair of one record set, scored and banded (those of the `keep` bands, default all);
    and the model used. `progress(stage, done, total)` is told how blocking and comparing go; `tally`
    counts the pairs of every band."""
    idx = candidate_array(records, progress=_blocking_progress(progress))
    return _score_pairs(records, None, idx, model, estimate, thresholds, NameFrequencies(records), keep,
                        _compare_progress(progress), tally)


def link_sets(
    left: Sequence[MatchRecord], right: Sequence[MatchRecord], *, model: FellegiSunterModel | None = None,
    estimate: bool = True, thresholds: Thresholds | None = None, keep: Iterable[Band] | None = None,
    progress: Callable[[str, int, int], None] | None = None, tally: Counter[Band] | None = None,
) -> tuple[list[ScoredPair], FellegiSunterModel]:
    idx = candidate_array(left, right, progress=_blocking_progress(progress))
    return _score_pairs(left, right, idx, model, estimate, thresholds, NameFrequencies([*left, *right]), keep,
                        _compare_progress(progress), tally)


def _blocking_progress(progress: Callable[[str, int, int], None] | None) -> Callable[[str, int], None] | None:
    if progress is None:
        return None
    return lambda label, found: progress(f"blocking: {label}", found, 0)


def _compare_progress(progress: Callable[[str, int, int], None] | None) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda done, total: progress("comparing pairs", done, total)


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
