"""The report lifecycle as a table: `(state, action) -> new state`.

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
  (none) / draft      cancel -> cancelled (OBR-25 X, FHIR cancelled)

Who may take each step (a grade) and what it signs is domain/workflow.py.
"""

from __future__ import annotations

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


S, A = State, Action
TRANSITIONS: dict[tuple[State, Action], State] = {
    (S.NONE, A.SAVE): S.DRAFT,
    (S.DRAFT, A.SAVE): S.DRAFT,
    (S.PRELIMINARY, A.SAVE): S.PRELIMINARY,
    (S.CONSULTATION, A.SAVE): S.CONSULTATION,
    (S.AMENDING, A.SAVE): S.AMENDING,
    (S.NONE, A.PRELIMINARY): S.PRELIMINARY,
    (S.DRAFT, A.PRELIMINARY): S.PRELIMINARY,
    (S.PRELIMINARY, A.FINAL): S.FINAL,
    (S.CONSULTATION, A.FINAL): S.FINAL,
    (S.PRELIMINARY, A.RETURN): S.DRAFT,
    (S.PRELIMINARY, A.CONSULT): S.CONSULTATION,
    (S.CONSULTATION, A.CLOSE_CONSULTATION): S.PRELIMINARY,
    (S.FINAL, A.REQUEST_AMENDMENT): S.AMENDMENT_REQUESTED,
    (S.AMENDMENT_REQUESTED, A.APPROVE_AMENDMENT): S.AMENDING,
    (S.AMENDMENT_REQUESTED, A.REJECT_AMENDMENT): S.FINAL,
    (S.AMENDING, A.SIGN_AMENDED): S.FINAL,
    (S.FINAL, A.WITHDRAW): S.WITHDRAWN,
    (S.PRELIMINARY, A.WITHDRAW): S.WITHDRAWN,
    (S.NONE, A.CANCEL): S.CANCELLED,
    (S.DRAFT, A.CANCEL): S.CANCELLED,
}

EDITABLE = frozenset({S.NONE, S.DRAFT, S.PRELIMINARY, S.CONSULTATION, S.AMENDING})
"""States in which the content may change (every change is a new version)."""

# OBR-25 result status (HL7 table 0123) and FHIR DiagnosticReport.status per state.
OBR25 = {S.PRELIMINARY: "P", S.CONSULTATION: "P", S.FINAL: "F", S.WITHDRAWN: "W", S.CANCELLED: "X",
         S.AMENDMENT_REQUESTED: "F", S.AMENDING: "F"}
FHIR_STATUS = {S.NONE: "registered", S.DRAFT: "partial", S.PRELIMINARY: "preliminary",
               S.CONSULTATION: "preliminary", S.FINAL: "final", S.AMENDMENT_REQUESTED: "final",
               S.AMENDING: "final", S.WITHDRAWN: "entered-in-error", S.CANCELLED: "cancelled"}


class InvalidTransition(Exception):
    """No such step from this state (HTTP 409); the message lists the steps there are."""

    def __init__(self, state: State, action: Action):
        possible = sorted(a.value for (s, a) in TRANSITIONS if s == state)
        super().__init__(f"cannot {action.value} a report in state {state.value}; "
                         f"possible: {', '.join(possible) or 'none'}")
        self.state = state
        self.action = action


def next_state(state: State, action: Action) -> State:
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise InvalidTransition(state, action) from None
