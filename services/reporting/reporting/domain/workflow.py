"""Who may take each step of the report lifecycle (domain/states.py), and what the step signs.

Who acts is a *grade*, not a raw role: a radiologist registered as trainee (or an AI system
calling with an API token) is grade "trainee" and can only draft; "radiologist" signs
preliminary reports; "senior" (senior-radiologist) reviews, signs final and decides amendments.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from reporting.domain.states import Action, State, next_state


class Grade(StrEnum):
    TRAINEE = "trainee"  # medical student, resident, assistant, or an AI system
    RADIOLOGIST = "radiologist"
    SENIOR = "senior"
    CLINICIAN = "clinician"  # may request an amendment (for the patient too)
    ADMIN = "admin"


ANY_REPORTER = frozenset({Grade.TRAINEE, Grade.RADIOLOGIST, Grade.SENIOR})
SIGNERS = frozenset({Grade.RADIOLOGIST, Grade.SENIOR})
SENIOR = frozenset({Grade.SENIOR})
SENIOR_OR_ADMIN = frozenset({Grade.SENIOR, Grade.ADMIN})


@dataclass(frozen=True)
class Rule:
    grades: frozenset[Grade]  # who may take the step
    signs: str | None = None  # the signature kind this step applies, if it signs
    doc: str = ""


S, A = State, Action
RULES: dict[tuple[State, Action], Rule] = {
    (S.NONE, A.SAVE): Rule(ANY_REPORTER, doc="first draft (trainee, AI or radiologist)"),
    (S.DRAFT, A.SAVE): Rule(ANY_REPORTER, doc="edit the draft"),
    (S.PRELIMINARY, A.SAVE): Rule(SIGNERS, doc="reviewer revises the preliminary report"),
    (S.CONSULTATION, A.SAVE): Rule(SIGNERS, doc="the group revises during consultation"),
    (S.AMENDING, A.SAVE): Rule(SIGNERS, doc="rewrite the approved amendment"),
    (S.NONE, A.PRELIMINARY): Rule(SIGNERS, "preliminary", "radiologist reports directly"),
    (S.DRAFT, A.PRELIMINARY): Rule(SIGNERS, "preliminary", "radiologist checks the draft"),
    (S.PRELIMINARY, A.FINAL): Rule(SENIOR, "final", "senior reviews and signs"),
    (S.CONSULTATION, A.FINAL): Rule(SENIOR, "final", "signed after the consultation"),
    (S.PRELIMINARY, A.RETURN): Rule(SENIOR, doc="reviewer returns it for rework"),
    (S.PRELIMINARY, A.CONSULT): Rule(SIGNERS, doc="difficult case to the group"),
    (S.CONSULTATION, A.CLOSE_CONSULTATION): Rule(SENIOR, doc="group done; back to review"),
    (S.FINAL, A.REQUEST_AMENDMENT): Rule(
        frozenset({Grade.CLINICIAN, Grade.RADIOLOGIST, Grade.SENIOR, Grade.ADMIN}),
        doc="clinician, patient (through staff) or radiologist asks for a change, with a reason"),
    (S.AMENDMENT_REQUESTED, A.APPROVE_AMENDMENT): Rule(SENIOR, doc="department agrees"),
    (S.AMENDMENT_REQUESTED, A.REJECT_AMENDMENT): Rule(SENIOR, doc="department refuses"),
    (S.AMENDING, A.SIGN_AMENDED): Rule(SENIOR, "amended", "re-signed; old version withdrawn"),
    (S.FINAL, A.WITHDRAW): Rule(SENIOR_OR_ADMIN, doc="wrong patient/exam: withdrawn"),
    (S.PRELIMINARY, A.WITHDRAW): Rule(SENIOR_OR_ADMIN, doc="withdraw a sent preliminary"),
    (S.NONE, A.CANCEL): Rule(SENIOR_OR_ADMIN, doc="not to be reported"),
    (S.DRAFT, A.CANCEL): Rule(SENIOR_OR_ADMIN, doc="not to be reported"),
}
"""Who may take each step of states.TRANSITIONS (the same keys: tests/test_workflow.py checks it)."""


@dataclass(frozen=True)
class Step:
    """One step a caller may take: where it leads, who may take it, what it signs."""

    new_state: State
    grades: frozenset[Grade]
    signs: str | None = None
    doc: str = ""


class NotPermitted(Exception):
    """The step exists but the caller's grade may not take it (HTTP 403)."""


class SameReader(NotPermitted):
    """Four eyes: this step needs a second person, and the site does not allow single reading (HTTP 403)."""


def four_eyes(first: str | None, second: str, *, what: str, single_reader_site: bool) -> bool:
    """Whether `second` taking the step after `first` is single reading (allowed only on a
    single-reader site, then True so the caller records it); a different person is False."""
    if not first or first != second:
        return False
    if not single_reader_site:
        raise SameReader(f"four eyes: {what} must be someone else than {first} "
                         "(this site does not allow single-reader operation)")
    return True


def transition(state: State, action: Action, grades: set[Grade] | frozenset[Grade]) -> Step:
    """The step `action` from `state` for a caller holding `grades`, or raise why not
    (InvalidTransition: no such step; NotPermitted: not for these grades)."""
    new_state = next_state(state, action)
    rule = RULES[(state, action)]
    if not (rule.grades & set(grades)):
        needed = ", ".join(sorted(g.value for g in rule.grades))
        raise NotPermitted(f"{action.value} from {state.value} requires grade {needed}")
    return Step(new_state, rule.grades, rule.signs, rule.doc)


def allowed_actions(state: State, grades: set[Grade] | frozenset[Grade]) -> list[str]:
    """What the caller may do next (the page shows only these buttons)."""
    return sorted(a.value for (s, a), rule in RULES.items() if s == state and rule.grades & set(grades))


def grades_of(roles: tuple[str, ...] | list[str], reporter_kind: str | None) -> frozenset[Grade]:
    """A caller's grades from token roles and the reporter register (trainee / AI / radiologist)."""
    found: set[Grade] = set()
    if "senior-radiologist" in roles:
        found.add(Grade.SENIOR)
    if "radiologist" in roles:
        found.add(Grade.TRAINEE if reporter_kind in ("trainee", "ai") else Grade.RADIOLOGIST)
    if "clinician" in roles:
        found.add(Grade.CLINICIAN)
    if "admin" in roles:
        found.add(Grade.ADMIN)
    return frozenset(found)
