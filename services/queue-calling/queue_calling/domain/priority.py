"""Priority policy of a queue (smart-imaging standard 6.2.2 (2), 6.3 (4)).

A policy is JSON on the queue row, merged over DEFAULT_POLICY:
  levels            category -> level; higher is called first, FIFO within a level
  elderly_age       age (years) from which a patient counts as "elderly"
  fairness_after    after this many priority calls in a row, while normal patients wait, the next
                    call takes the first normal patient (0 disables); so normal patients are not starved
  fairness_exempt   levels at or above this ignore the fairness rule (emergencies always go first)
  appointments_first  patients arriving within their appointment slot before walk-ins of the same level
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

DEFAULT_POLICY: dict[str, Any] = {
    "levels": {"emergency": 100, "critical": 90, "elderly": 20, "disabled": 20, "military": 20},
    "elderly_age": 70,
    "fairness_after": 3,
    "fairness_exempt": 90,
    "appointments_first": True,
}

CATEGORIES = ("emergency", "critical", "elderly", "disabled", "military")


def effective_policy(policy: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = {**DEFAULT_POLICY, **(policy or {})}
    merged["levels"] = {**DEFAULT_POLICY["levels"], **((policy or {}).get("levels") or {})}
    return merged


def age_on(birth_date: date | None, today: date) -> int | None:
    if birth_date is None:
        return None
    return today.year - birth_date.year - ((today.month, today.day) < (birth_date.month, birth_date.day))


def categories_of(
    *, patient_class: str, priority: str, special: Mapping[str, Any], age: int | None,
    declared: Sequence[str], policy: Mapping[str, Any],
) -> list[str]:
    """Which care categories apply: from the order (emergency, critical), age, and the desk's word."""
    found: list[str] = []
    if patient_class == "emergency" or priority == "stat":
        found.append("emergency")
    if special.get("critical"):
        found.append("critical")
    if age is not None and age >= int(policy["elderly_age"]):
        found.append("elderly")
    for cat in declared:
        if cat not in found:
            found.append(cat)
    return found


def level_of(categories: Sequence[str], policy: Mapping[str, Any]) -> int:
    levels: Mapping[str, int] = policy["levels"]
    return max((int(levels.get(c, 0)) for c in categories), default=0)


@dataclass(frozen=True)
class Candidate:
    entry_id: Any
    priority_level: int
    on_time: bool
    sort_key: float


def ordering_key(c: Candidate, policy: Mapping[str, Any]) -> tuple[int, int, float]:
    """Level first, then on-time appointments (if enabled), then arrival/manual order."""
    on_time_first = 0 if (policy["appointments_first"] and c.on_time) else 1
    return (-c.priority_level, on_time_first, c.sort_key)


def order_candidates(candidates: Sequence[Candidate], policy: Mapping[str, Any]) -> list[Candidate]:
    return sorted(candidates, key=lambda c: ordering_key(c, policy))


def choose_next(candidates: Sequence[Candidate], policy: Mapping[str, Any], streak: int) -> Candidate | None:
    """The patient a call-next takes, applying the fairness rule over `streak` priority calls so far."""
    ordered = order_candidates(candidates, policy)
    if not ordered:
        return None
    first = ordered[0]
    after = int(policy["fairness_after"])
    if after > 0 and first.priority_level > 0 and first.priority_level < int(policy["fairness_exempt"]) \
            and streak >= after:
        normal = next((c for c in ordered if c.priority_level == 0), None)
        if normal is not None:
            return normal
    return first


def next_streak(chosen: Candidate, streak: int, normal_waiting: bool, policy: Mapping[str, Any]) -> int:
    """Priority calls in a row: reset by a normal call, or when nobody normal was waiting to be starved.

    Exempt (emergency) calls leave the count as it was: they neither starve nor rescue anyone.
    """
    if chosen.priority_level >= int(policy["fairness_exempt"]):
        return streak
    if chosen.priority_level == 0 or not normal_waiting:
        return 0
    return streak + 1
