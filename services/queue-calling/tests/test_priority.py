"""Priority policy: levels, FIFO within a level, the fairness rule, appointments before walk-ins."""

from __future__ import annotations

from datetime import date

from queue_calling.domain import priority
from queue_calling.domain.priority import Candidate

POLICY = priority.effective_policy({"fairness_after": 2})


def cand(i: int, level: int = 0, on_time: bool = False) -> Candidate:
    return Candidate(f"e{i}", level, on_time, float(i))


def test_levels_then_fifo() -> None:
    ordered = priority.order_candidates([cand(1), cand(2, 20), cand(3), cand(4, 100), cand(5, 20)], POLICY)
    assert [c.entry_id for c in ordered] == ["e4", "e2", "e5", "e1", "e3"]


def test_appointments_on_time_before_walk_ins_when_enabled() -> None:
    cands = [cand(1), cand(2, on_time=True)]
    assert priority.order_candidates(cands, POLICY)[0].entry_id == "e2"
    off = priority.effective_policy({"appointments_first": False})
    assert priority.order_candidates(cands, off)[0].entry_id == "e1"


def test_fairness_alternates_after_n_priority_calls() -> None:
    waiting = [cand(1), cand(2), cand(3, 20), cand(4, 20), cand(5, 20), cand(6, 20)]
    streak, calls = 0, []
    while waiting:
        chosen = priority.choose_next(waiting, POLICY, streak)
        assert chosen is not None
        normal_waiting = any(c.priority_level == 0 for c in waiting)
        streak = priority.next_streak(chosen, streak, normal_waiting, POLICY)
        calls.append(chosen.entry_id)
        waiting.remove(chosen)
    # two priority calls, then one normal, then two priority, then the rest
    assert calls == ["e3", "e4", "e1", "e5", "e6", "e2"]


def test_emergency_ignores_fairness_and_does_not_count() -> None:
    waiting = [cand(1), cand(2, 100), cand(3, 20)]
    chosen = priority.choose_next(waiting, POLICY, streak=5)
    assert chosen is not None and chosen.entry_id == "e2"
    assert priority.next_streak(chosen, 1, True, POLICY) == 1


def test_no_fairness_when_disabled() -> None:
    policy = priority.effective_policy({"fairness_after": 0})
    chosen = priority.choose_next([cand(1), cand(2, 20)], policy, streak=50)
    assert chosen is not None and chosen.entry_id == "e2"


def test_categories_and_level() -> None:
    cats = priority.categories_of(patient_class="emergency", priority="routine", special={"critical": True},
                                  age=priority.age_on(date(1940, 1, 1), date(2026, 1, 1)), declared=["military"],
                                  policy=POLICY)
    assert cats == ["emergency", "critical", "elderly", "military"]
    assert priority.level_of(cats, POLICY) == 100
    assert priority.level_of([], POLICY) == 0
    assert priority.age_on(date(2000, 6, 2), date(2026, 6, 1)) == 25
