"""Fellegi–Sunter model: m/u probabilities per agreement level, estimated by EM.

For a pair with comparison vector gamma (one level per field, comparators.py), the match
weight is sum over fields of log2(m_f[level] / u_f[level]), where m is P(level | same person)
and u is P(level | different people). A missing value contributes nothing (it is marginalized
out of both likelihoods). The parameters are not hand-set: `estimate()` fits them with the EM
algorithm of Winkler (1988) on the unlabeled comparison vectors of blocked candidate pairs,
assuming conditional independence of fields given match status. The hand-set starting point
only breaks the symmetry between the two latent classes (which one is "match"). An exact name
agreement is further weighted by how common the name is (frequencies.py), around the reference
frequency `name_frequency_ref` estimated with the model.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imaging_common.empi.comparators import FIELDS, MISSING

_EPS = 1e-6
_UNSEEN = 1e-5  # m and u both below this: EM saw the level in neither class
DEFAULT_MODEL_FILE = Path(__file__).with_name("default_model.json")

# Starting point for EM: matches mostly agree, non-matches mostly disagree.
_M_START = {
    "name": (0.80, 0.08, 0.04, 0.05, 0.03), "birth_date": (0.93, 0.05, 0.02), "sex": (0.98, 0.02),
    "national_id": (0.90, 0.08, 0.02), "local_id": (0.7, 0.1, 0.2), "phone": (0.75, 0.05, 0.20),
    "address": (0.6, 0.25, 0.15), "postcode": (0.8, 0.05, 0.15),
}
_U_START = {
    "name": (0.05, 0.01, 0.01, 0.08, 0.85), "birth_date": (0.05, 0.02, 0.93), "sex": (0.5, 0.5),
    "national_id": (0.001, 0.001, 0.998), "local_id": (0.01, 0.002, 0.988), "phone": (0.05, 0.01, 0.94),
    "address": (0.1, 0.2, 0.7), "postcode": (0.2, 0.05, 0.75),
}


def _monotone(weights: list[float], seen: list[bool] | None = None) -> list[float]:
    """Levels run from strongest agreement to disagreement; a weaker level never weighs more than a
    stronger one. EM can say otherwise when a level is rare among non-matches in the sample (no two
    different people had phones one digit apart), but a typo is not better evidence than agreement:
    families buy consecutive numbers, and a pinyin-only name says less than the same characters.
    A level the data never showed (`seen` False: no pinyin or homophone among Latin-script names)
    caps nothing, its 0 says nothing about the levels below it; it weighs as the stronger level above."""
    out: list[float] = []
    cap: float | None = None
    for k, w in enumerate(weights):
        if seen is not None and not seen[k]:
            out.append(cap if cap is not None else w)
            continue
        w = min(w, cap) if cap is not None else w
        out.append(w)
        cap = w
    return out


@dataclass
class FellegiSunterModel:
    m: dict[str, list[float]]
    u: dict[str, list[float]]
    prior: float = 0.01  # P(match) among candidate pairs
    info: dict[str, Any] = field(default_factory=dict)  # how it was estimated
    # Name frequencies the name levels' u belong to, per script (frequencies.py: "H" characters, "L"
    # pinyin): agreement on a rarer name weighs more, on a commoner one less. None: no such weights.
    name_frequency_ref: dict[str, float] | None = None

    def __post_init__(self) -> None:
        self._weights = [
            _monotone([math.log2(max(m, _EPS) / max(u, _EPS)) for m, u in zip(self.m[name], self.u[name], strict=True)],
                      [m > _UNSEEN or u > _UNSEEN for m, u in zip(self.m[name], self.u[name], strict=True)])
            for name, _ in FIELDS
        ]

    @classmethod
    def starting_point(cls) -> FellegiSunterModel:
        return cls({k: list(v) for k, v in _M_START.items()}, {k: list(v) for k, v in _U_START.items()}, 0.01,
                   {"source": "starting point (not estimated)"})

    @classmethod
    def default(cls) -> FellegiSunterModel:
        """Parameters shipped with the library (EM on synthetic data), until a site estimates its own."""
        if DEFAULT_MODEL_FILE.exists():
            return cls.load(DEFAULT_MODEL_FILE)
        return cls.starting_point()

    def weight(self, gamma: Sequence[int]) -> float:
        total = 0.0
        for f, level in enumerate(gamma):
            if level != MISSING:
                total += self._weights[f][level]
        return total

    def explain(self, gamma: Sequence[int]) -> dict[str, dict[str, Any]]:
        """Per field: the level name and its weight, for the review screen."""
        out: dict[str, dict[str, Any]] = {}
        for f, ((name, levels), level) in enumerate(zip(FIELDS, gamma, strict=True)):
            if level == MISSING:
                out[name] = {"level": "missing", "weight": 0.0}
            else:
                out[name] = {"level": levels[level], "weight": round(self._weights[f][level], 2)}
        return out

    def weights_table(self) -> dict[str, dict[str, float]]:
        return {name: {lvl: round(self._weights[f][i], 3) for i, lvl in enumerate(levels)}
                for f, (name, levels) in enumerate(FIELDS)}

    # ---- persistence --------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"m": self.m, "u": self.u, "prior": self.prior, "name_frequency_ref": self.name_frequency_ref,
                "info": self.info}

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False))

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> FellegiSunterModel:
        ref = body.get("name_frequency_ref")
        m, u = dict(body["m"]), dict(body["u"])
        # A model saved before a field (postcode) or a level (local_id's one-typo) existed: start values.
        for name, levels in FIELDS:
            if name not in m or name not in u or len(m[name]) != len(levels) or len(u[name]) != len(levels):
                m[name], u[name] = list(_M_START[name]), list(_U_START[name])
        return cls(m, u, float(body["prior"]), body.get("info", {}),
                   {k: float(v) for k, v in ref.items()} if ref else None)

    @classmethod
    def load(cls, path: Path) -> FellegiSunterModel:
        return cls.from_json(json.loads(path.read_text()))

    # ---- estimation ---------------------------------------------------------------------
    @classmethod
    def estimate(
        cls, gammas: Iterable[Sequence[int]] | Mapping[tuple[int, ...], int], *,
        start: FellegiSunterModel | None = None,
        max_iter: int = 200, tol: float = 1e-7,
    ) -> FellegiSunterModel:
        """EM over comparison vectors (repeated patterns are counted once, weighted by count); `gammas`
        may also be a mapping of pattern -> count."""
        counts = Counter(gammas) if isinstance(gammas, Mapping) else Counter(tuple(g) for g in gammas)
        if not counts:
            raise ValueError("no candidate pairs to estimate from")
        patterns = np.array(list(counts.keys()), dtype=np.int64)  # (P, F)
        n = np.array(list(counts.values()), dtype=np.float64)  # (P,)
        start = start or cls.starting_point()
        m = [np.array(start.m[name], dtype=np.float64) for name, _ in FIELDS]
        u = [np.array(start.u[name], dtype=np.float64) for name, _ in FIELDS]
        p = min(max(start.prior, 0.001), 0.5)
        present = [patterns[:, f] != MISSING for f in range(len(FIELDS))]
        onehots = [
            [(patterns[:, f] == lvl) for lvl in range(len(levels))] for f, (_, levels) in enumerate(FIELDS)
        ]
        previous = -np.inf
        iterations = 0
        for iterations in range(1, max_iter + 1):  # noqa: B007 - reported below
            log_m = np.zeros(len(patterns))
            log_u = np.zeros(len(patterns))
            for f in range(len(FIELDS)):
                idx = np.where(present[f], patterns[:, f], 0)
                log_m += np.where(present[f], np.log(m[f][idx]), 0.0)
                log_u += np.where(present[f], np.log(u[f][idx]), 0.0)
            a = np.log(p) + log_m
            b = np.log1p(-p) + log_u
            top = np.maximum(a, b)
            log_total = top + np.log(np.exp(a - top) + np.exp(b - top))
            g = np.exp(a - log_total)  # P(match | pattern)
            loglik = float((n * log_total).sum())
            wm, wu = n * g, n * (1 - g)
            p = float(min(max(wm.sum() / n.sum(), _EPS), 1 - _EPS))
            for f in range(len(FIELDS)):
                denom_m = wm[present[f]].sum()
                denom_u = wu[present[f]].sum()
                if denom_m > 0:
                    m[f] = np.clip(np.array([wm[oh].sum() for oh in onehots[f]]) / denom_m, _EPS, 1.0)
                if denom_u > 0:
                    u[f] = np.clip(np.array([wu[oh].sum() for oh in onehots[f]]) / denom_u, _EPS, 1.0)
            if abs(loglik - previous) < tol * max(1.0, abs(loglik)):
                break
            previous = loglik
        return cls(
            {name: [float(x) for x in m[f]] for f, (name, _) in enumerate(FIELDS)},
            {name: [float(x) for x in u[f]] for f, (name, _) in enumerate(FIELDS)},
            p,
            {"source": "EM", "pairs": int(n.sum()), "patterns": len(patterns), "iterations": iterations},
        )
