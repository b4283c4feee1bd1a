"""The report lifecycle as a table: `(action, state) -> (new state, who may do it)`.

Read it against smart-imaging standard 7.1.1 (trainee -> preliminary -> review -> consultation)
and 7.1.4 (amendment after signing: request -> review -> amend/correct -> re-sign):

  state \\ action      save   preliminary  final  return  consult  close-consult  request-amend
  (none)              draft  preliminary   -      -       -        -              -
  draft               draft  preliminary   -      -       -        -              -
  preliminary         prel.  -             final  draft   consult. -              -
  consultation        cons.  -             final  -       -        preliminary    -
  final               -      -             -      -       -        -              amendment-req.
  amendment-requested approve-amendment -> amending, reject-amendment -> final
  amending            save -> amending, sign-amended -> final
  final / preliminary withdraw -> withdrawn (OBR-25 W, FHIR entered-in-error)
  draft / preliminary cancel -> cancelled (OBR-25 X, FHIR cancelled)

Who acts is a *grade*, not a raw role: a radiologist registered as trainee (or an AI system
calling with an API token) is grade "trainee" and can only draft; "radiologist" signs
preliminary reports; "senior" (senior-radiologist) reviews, signs final and decides amendments.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    NONE = "none"  # no report yet for the exam
    DRAFT = "draft"
    PRELIMINARY = "preliminary"
    CONSULTATION = "consultation"
    FINAL = "final"
    AMENDMENT_REQUESTED = "amendment-requested"
    AMENDING = "amending"
    WITHDRAWN = "withdrawn"
    CANCELLED = "cancelled"


class Action(StrEnum):
    SAVE = "save"  # keep a new version, state unchanged (or draft for a new report)
    PRELIMINARY = "preliminary"  # sign the preliminary report (初诊报告)
    FINAL = "final"  # review and sign the final report (审核报告)
    RETURN = "return"  # reviewer sends a preliminary back to draft
    CONSULT = "consult"  # difficult case: to the group (会诊)
    CLOSE_CONSULTATION = "close-consultation"  # group revised it: back to review
    REQUEST_AMENDMENT = "request-amendment"  # 7.1.4 (1)
    APPROVE_AMENDMENT = "approve-amendment"  # 7.1.4 (2)
    REJECT_AMENDMENT = "reject-amendment"
    SIGN_AMENDED = "sign-amended"  # 7.1.4 (3)(4): re-sign; the previous version is withdrawn
    WITHDRAW = "withdraw"  # result withdrawn everywhere it was sent
    CANCEL = "cancel"  # exam will not be reported


class Grade(StrEnum):
    TRAINEE = "trainee"  # medical student, resident, assistant, or an AI system
    RADIOLOGIST = "radiologist"
    SENIOR = "senior"
    CLINICIAN = "clinician"  # may request an amendment (for the patient too)
    ADMIN = "admin"


ANY_REPORTER = frozenset({Grade.TRAINEE, Grade.RADIOLOGIST, Grade.SENIOR})
SIGNERS = frozenset({Grade.RADIOLOGIST, Grade.SENIOR})
SENIOR = frozenset({Grade.SENIOR})


@dataclass(frozen=True)
class Transition:
    new_state: State
    grades: frozenset[Grade]
    signs: str | None = None  # the signature kind this step applies, if it signs
    doc: str = ""


S, A = State, Action
TABLE: dict[tuple[Action, State], Transition] = {
    (A.SAVE, S.NONE): Transition(S.DRAFT, ANY_REPORTER, doc="first draft (trainee, AI or radiologist)"),
    (A.SAVE, S.DRAFT): Transition(S.DRAFT, ANY_REPORTER, doc="edit the draft"),
    (A.SAVE, S.PRELIMINARY): Transition(S.PRELIMINARY, SIGNERS, doc="reviewer revises the preliminary report"),
    (A.SAVE, S.CONSULTATION): Transition(S.CONSULTATION, SIGNERS, doc="the group revises during consultation"),
    (A.SAVE, S.AMENDING): Transition(S.AMENDING, SIGNERS, doc="rewrite the approved amendment"),
    (A.PRELIMINARY, S.NONE): Transition(S.PRELIMINARY, SIGNERS, "preliminary", "radiologist reports directly"),
    (A.PRELIMINARY, S.DRAFT): Transition(S.PRELIMINARY, SIGNERS, "preliminary", "radiologist checks the draft"),
    (A.FINAL, S.PRELIMINARY): Transition(S.FINAL, SENIOR, "final", "senior reviews and signs"),
    (A.FINAL, S.CONSULTATION): Transition(S.FINAL, SENIOR, "final", "signed after the consultation"),
    (A.RETURN, S.PRELIMINARY): Transition(S.DRAFT, SENIOR, doc="reviewer returns it for rework"),
    (A.CONSULT, S.PRELIMINARY): Transition(S.CONSULTATION, SIGNERS, doc="difficult case to the group"),
    (A.CLOSE_CONSULTATION, S.CONSULTATION): Transition(S.PRELIMINARY, SENIOR, doc="group done; back to review"),
    (A.REQUEST_AMENDMENT, S.FINAL): Transition(
        S.AMENDMENT_REQUESTED, frozenset({Grade.CLINICIAN, Grade.RADIOLOGIST, Grade.SENIOR, Grade.ADMIN}),
        doc="clinician, patient (through staff) or radiologist asks for a change, with a reason"),
    (A.APPROVE_AMENDMENT, S.AMENDMENT_REQUESTED): Transition(S.AMENDING, SENIOR, doc="department agrees"),
    (A.REJECT_AMENDMENT, S.AMENDMENT_REQUESTED): Transition(S.FINAL, SENIOR, doc="department refuses"),
    (A.SIGN_AMENDED, S.AMENDING): Transition(S.FINAL, SENIOR, "amended", "re-signed; old version withdrawn"),
    (A.WITHDRAW, S.FINAL): Transition(S.WITHDRAWN, frozenset({Grade.SENIOR, Grade.ADMIN}),
                                      doc="wrong patient/exam: withdrawn"),
    (A.WITHDRAW, S.PRELIMINARY): Transition(S.WITHDRAWN, frozenset({Grade.SENIOR, Grade.ADMIN}),
                                            doc="withdraw a sent preliminary"),
    (A.CANCEL, S.NONE): Transition(S.CANCELLED, frozenset({Grade.SENIOR, Grade.ADMIN}), doc="not to be reported"),
    (A.CANCEL, S.DRAFT): Transition(S.CANCELLED, frozenset({Grade.SENIOR, Grade.ADMIN}), doc="not to be reported"),
}

EDITABLE = frozenset({S.NONE, S.DRAFT, S.PRELIMINARY, S.CONSULTATION, S.AMENDING})
"""States in which the content may change (every change is a new version)."""

# OBR-25 result status (HL7 table 0123) and FHIR DiagnosticReport.status per state.
OBR25 = {S.PRELIMINARY: "P", S.CONSULTATION: "P", S.FINAL: "F", S.WITHDRAWN: "W", S.CANCELLED: "X",
         S.AMENDMENT_REQUESTED: "F", S.AMENDING: "F"}
FHIR_STATUS = {S.NONE: "registered", S.DRAFT: "partial", S.PRELIMINARY: "preliminary",
               S.CONSULTATION: "preliminary", S.FINAL: "final", S.AMENDMENT_REQUESTED: "final",
               S.AMENDING: "final", S.WITHDRAWN: "entered-in-error", S.CANCELLED: "cancelled"}


class WorkflowError(Exception):
    """Base: the step cannot be taken."""


class InvalidTransition(WorkflowError):
    """No such step from this state (HTTP 409)."""


class NotPermitted(WorkflowError):
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


def transition(action: Action, state: State, grades: set[Grade] | frozenset[Grade]) -> Transition:
    """The step `action` from `state` for a caller holding `grades`, or raise why not."""
    step = TABLE.get((action, state))
    if step is None:
        allowed = sorted(a.value for (a, s) in TABLE if s == state)
        raise InvalidTransition(
            f"cannot {action.value} a report in state {state.value}; possible: {', '.join(allowed) or 'none'}")
    if not (step.grades & set(grades)):
        needed = ", ".join(sorted(g.value for g in step.grades))
        raise NotPermitted(f"{action.value} from {state.value} requires grade {needed}")
    return step


def allowed_actions(state: State, grades: set[Grade] | frozenset[Grade]) -> list[str]:
    """What the caller may do next (the page shows only these buttons)."""
    return sorted(a.value for (a, s), t in TABLE.items() if s == state and t.grades & set(grades))


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
