"""Benchmark harness (`make bench`): figures are printed, never asserted as timings.

A benchmark takes the `bench` fixture and records figures with `bench.figure(name, value, unit,
target=...)`; `bench.compare(...)` records ours against a peer tool (DCMTK) with the ratio. All
figures are printed together at the end of the run, and written to `var/bench/results.json`.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest


@dataclass
class Figure:
    bench: str
    name: str
    value: float
    unit: str
    target: str = ""
    note: str = ""


@dataclass
class BenchRecorder:
    bench_name: str
    figures: list[Figure] = field(default_factory=list)

    def figure(self, name: str, value: float, unit: str, *, target: str = "", note: str = "") -> None:
        self.figures.append(Figure(self.bench_name, name, value, unit, target, note))
        extra = (f"  (target {target})" if target else "") + (f"  {note}" if note else "")
        print(f"  {name}: {value:.4g} {unit}{extra}")

    def compare(self, name: str, ours: float, peer: float, unit: str, *, peer_name: str = "DCMTK",
                target: str = "") -> None:
        ratio = ours / peer if peer else float("inf")
        self.figure(f"{name} (ours)", ours, unit)
        self.figure(f"{name} ({peer_name})", peer, unit)
        self.figure(f"{name} ratio ours/{peer_name}", ratio, "x", target=target)


_ALL: list[Figure] = []


@pytest.fixture
def bench(request: pytest.FixtureRequest) -> Iterator[BenchRecorder]:
    recorder = BenchRecorder(request.node.name)
    print(f"\n== {request.node.name}")
    yield recorder
    _ALL.extend(recorder.figures)


def percentile(values: list[float], p: float) -> float:
    """p in [0, 100]; nearest-rank on sorted values."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def summarize_ms(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {"p50": statistics.median(ms), "p95": percentile(ms, 95), "p99": percentile(ms, 99), "n": len(ms)}


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self.start


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _ALL:
        return
    out = Path("var/bench")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps([asdict(f) for f in _ALL], indent=2, ensure_ascii=False))
    width = max(len(f.name) for f in _ALL)
    print("\n\nBenchmark figures")
    for f in _ALL:
        target = f"  target {f.target}" if f.target else ""
        print(f"  [{f.bench}] {f.name:<{width}}  {f.value:>12.4g} {f.unit}{target}")
