"""Lifecycle of a queue entry as a table: `(action, state) -> new state`.

Read against smart-imaging standard 6.2.2 (3)-(4) and 6.3 (2):
  check-in sets the exam "arrived" and the entry `waiting`;
  顺呼 call-next and 选呼 select-call take a `waiting` patient to `called` (staged at the room door);
  重呼 recall repeats the call of a `called` patient;
  跳呼/过号 skip passes a patient who did not come (`skipped`), who returns to `waiting` by the
  queue's skip rule (after N calls, end of session, end of time slice) or when a terminal restores it;
  the exam starting (MPPS / technologist) makes it `in_exam`, its end `done`;
  transfer moves the entry to another queue/room, keeping its history, and it waits there again.
Any (action, state) pair not in the table is refused: that refusal, done in SQL with the state in
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

TRANSITIONS: dict[tuple[Action, State], State] = {
    (Action.CALL, W): C,
    (Action.CALL, S): C,  # select-call may call a passed patient back directly
    (Action.RECALL, C): C,
    (Action.SKIP, W): S,
    (Action.SKIP, C): S,
    (Action.RETURN, S): W,
    (Action.RESTORE, S): W,
    (Action.RESTORE, C): W,
    (Action.RESTORE, X): W,
    (Action.START, W): E,
    (Action.START, C): E,
    (Action.START, S): E,
    (Action.FINISH, E): D,
    (Action.FINISH, C): D,
    (Action.CANCEL, W): X,
    (Action.CANCEL, C): X,
    (Action.CANCEL, S): X,
    (Action.TRANSFER, W): W,
    (Action.TRANSFER, C): W,
    (Action.TRANSFER, S): W,
    (Action.REORDER, W): W,
}
"""(action, current state) -> next state. Everything else is an invalid transition."""

LIVE_STATES = (W, C, S, E)


def sources(action: Action) -> list[str]:
    """The states an action may start from (used in the guarded UPDATE's WHERE clause)."""
    return [str(state) for (act, state) in TRANSITIONS if act == action]


def next_state(action: Action, state: State) -> State:
    try:
        return TRANSITIONS[(action, state)]
    except KeyError:
        raise InvalidTransition(action, state) from None


class InvalidTransition(Exception):
    def __init__(self, action: Action | str, state: State | str | None) -> None:
        self.action = str(action)
        self.state = str(state) if state is not None else None
        super().__init__(f"cannot {self.action} an entry that is {self.state}")
