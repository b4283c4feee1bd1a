"""Lifecycle of a queue entry as a table: `(state, action) -> new state`.

Read against smart-imaging standard 6.2.2 (3)-(4) and 6.3 (2):
  check-in sets the exam "arrived" and the entry `waiting`;
  顺呼 call-next and 选呼 select-call take a `waiting` patient to `called` (staged at the room door);
  重呼 recall repeats the call of a `called` patient;
  跳呼/过号 skip passes a patient who did not come (`skipped`), who returns to `waiting` by the
  queue's skip rule (after N calls, end of session, end of time slice) or when a terminal restores it;
  the exam starting (MPPS / technologist) makes it `in_exam`, its end `done`;
  transfer moves the entry to another queue/room, keeping its history, and it waits there again.
Any (state, action) pair not in the table is refused: that refusal, done in SQL with the state in
the WHERE clause, is what keeps two terminals from calling the same patient.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    WAITING = "waiting"
    CALLED = "called"
    SKIPPED = "skipped"
    IN_EXAM = "in_exam"
    DONE = "done"
    CANCELLED = "cancelled"


class Action(StrEnum):
    CHECK_IN = "check_in"
    CALL = "call"  # call-next and select-call
    RECALL = "recall"
    SKIP = "skip"
    RETURN = "return"  # skip rule brought it back
    RESTORE = "restore"  # a terminal puts it back to waiting
    START = "start"
    FINISH = "finish"
    CANCEL = "cancel"
    TRANSFER = "transfer"
    REORDER = "reorder"


W, C, S, E, D, X = State.WAITING, State.CALLED, State.SKIPPED, State.IN_EXAM, State.DONE, State.CANCELLED

TRANSITIONS: dict[tuple[State, Action], State] = {
    (W, Action.CALL): C,
    (S, Action.CALL): C,  # select-call may call a passed patient back directly
    (C, Action.RECALL): C,
    (W, Action.SKIP): S,
    (C, Action.SKIP): S,
    (S, Action.RETURN): W,
    (S, Action.RESTORE): W,
    (C, Action.RESTORE): W,
    (X, Action.RESTORE): W,
    (W, Action.START): E,
    (C, Action.START): E,
    (S, Action.START): E,
    (E, Action.FINISH): D,
    (C, Action.FINISH): D,
    (W, Action.CANCEL): X,
    (C, Action.CANCEL): X,
    (S, Action.CANCEL): X,
    (W, Action.TRANSFER): W,
    (C, Action.TRANSFER): W,
    (S, Action.TRANSFER): W,
    (W, Action.REORDER): W,
}
"""(current state, action) -> next state. Everything else is an invalid transition."""

LIVE_STATES = (W, C, S, E)


def sources(action: Action) -> list[str]:
    """The states an action may start from (used in the guarded UPDATE's WHERE clause)."""
    return [str(state) for (state, act) in TRANSITIONS if act == action]


def next_state(state: State, action: Action) -> State:
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise InvalidTransition(state, action) from None


class InvalidTransition(Exception):
    def __init__(self, state: State | str | None, action: Action | str) -> None:
        self.action = str(action)
        self.state = str(state) if state is not None else None
        super().__init__(f"cannot {self.action} an entry that is {self.state}")
