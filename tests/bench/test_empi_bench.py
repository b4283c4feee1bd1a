"""EMPI benchmarks: auto-link quality on synthetic Chinese identities, one-record match latency
against 100,000 people, and the batch CLI deduplicating 100,000 records.

The generator (imaging_common.empi.synthetic) makes realistic duplicates (ID typos and swaps,
missing IDs, homophones, pinyin-only and traditional entries, birth-date typos, new phones,
moves) and hard negatives (twins, namesakes born the same day, homophone namesakes), with
ground truth. Quality counts pairs: a true pair is one of two records of the same person.
"""

from __future__ import annotations

import csv
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from imaging_common.empi.bands import Band
from imaging_common.empi.matcher import MatchIndex, dedupe
from imaging_common.empi.record import MatchRecord
from imaging_common.empi.synthetic import Generator, SyntheticRecord, true_pairs

from .conftest import summarize_ms


def to_match(r: SyntheticRecord) -> MatchRecord:
    return MatchRecord.build(r.record_id, name=r.name, sex=r.sex, birth_date=r.birth_date,
                             identifiers=[("resident-id", r.id_number)] if r.id_number else [], phone=r.phone,
                             address=r.address)


def prf(linked: set[frozenset[str]], truth: set[frozenset[str]]) -> tuple[float, float, float]:
    tp = len(linked & truth)
    p = tp / len(linked) if linked else 1.0
    r = tp / len(truth) if truth else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def test_empi_autolink_quality(bench) -> None:
    records = Generator(seed=2024).population(20000)
    by_id = {r.record_id: r for r in records}
    started = time.perf_counter()
    pairs, model = dedupe([to_match(r) for r in records])
    elapsed = time.perf_counter() - started
    truth = true_pairs(records)
    linked = {frozenset((p.left.ref, p.right.ref)) for p in pairs if p.band is Band.LINK}
    flagged = {frozenset((p.left.ref, p.right.ref)) for p in pairs if p.band is not Band.NEW}
    p, r, f1 = prf(linked, truth)
    people = len({x.person_id for x in records})
    bench.figure("people", people, "persons", note=f"{len(records)} records, {len(truth)} true pairs")
    bench.figure("auto-link precision", p, "", target=">= 0.999")
    bench.figure("auto-link recall", r, "")
    bench.figure("auto-link F1", f1, "", target=">= 0.998")
    bench.figure("recall of link + review bands", len(flagged & truth) / len(truth), "",
                 note="duplicates a clerk sees at all")
    bench.figure("review list size", sum(1 for x in pairs if x.band is Band.REVIEW), "pairs")
    hard = Counter()
    for pair in linked - truth:
        a, b = (by_id[x] for x in pair)
        hard["+".join(sorted({a.kind, b.kind}))] += 1
    twins_linked = sum(v for k, v in hard.items() if "twin" in k)
    namesakes_linked = sum(v for k, v in hard.items() if "namesake" in k)
    bench.figure("twin pairs auto-linked", twins_linked, "pairs", target="0")
    bench.figure("same-birthday namesake pairs auto-linked", namesakes_linked, "pairs", target="0")
    missed = Counter()
    for pair in truth - linked:
        a, b = (by_id[x] for x in pair)
        missed[",".join(sorted(set(a.tags + b.tags))) or "(no error tags: IDs absent)"] += 1
    bench.figure("dedupe time incl. EM", elapsed, "s", note=f"model: {model.info}")
    print("  missed true pairs by the errors they carry (top 6):",
          "; ".join(f"{k}: {v}" for k, v in missed.most_common(6)))


def test_empi_one_record_latency(bench) -> None:
    gen = Generator(seed=99)
    people = gen.population(100000, duplicate_rate=0.0)
    index = MatchIndex()
    started = time.perf_counter()
    for r in people:
        index.add(to_match(r))
    bench.figure("index build", time.perf_counter() - started, "s", note=f"{len(index)} people")
    rng = random.Random(5)
    queries = [gen.duplicate(rng.choice(people)) for _ in range(1000)]
    queries += [gen._person(10**6 + i) for i in range(1000)]  # newcomers
    rng.shuffle(queries)
    samples = []
    for q in queries:
        t0 = time.perf_counter()
        index.match(to_match(q))  # includes normalizing the incoming record
        samples.append(time.perf_counter() - t0)
    s = summarize_ms(samples)
    bench.figure("one-record match p50", s["p50"], "ms")
    bench.figure("one-record match p95", s["p95"], "ms", target="<= 20 ms")
    bench.figure("one-record match p99", s["p99"], "ms")


def test_empi_batch_cli_100k(bench, tmp_path: Path) -> None:
    records = Generator(seed=7).population(75000)[:100000]
    src = tmp_path / "legacy.csv"
    with src.open("w", newline="", encoding="utf-8") as fh:
        rows = [r.row() for r in records]
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "pairs.csv"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "imaging_common.empi", "dedupe", str(src), "-o", str(out)],
                          capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    bench.figure("batch CLI dedupe of 100,000 records", elapsed, "s", target="< 60 s",
                 note=done.stderr.strip().splitlines()[-1])
    truth = true_pairs(records)
    with out.open(encoding="utf-8") as fh:
        linked = {frozenset((row["left_id"], row["right_id"])) for row in csv.DictReader(fh) if row["band"] == "link"}
    p, r, f1 = prf(linked, truth)
    bench.figure("batch auto-link precision", p, "")
    bench.figure("batch auto-link recall", r, "")
    bench.figure("batch auto-link F1", f1, "")
