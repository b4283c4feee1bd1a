"""The MPPS lifecycle (PS3.4 F.7.2.1; IHE SWF "MPPS In Progress / Completed") as a table:
`(state, action) -> new state`.

The modality creates the MPPS IN PROGRESS (N-CREATE); while the exam runs it may N-SET more
attributes (the status stays IN PROGRESS); it ends it with an N-SET of COMPLETED or DISCONTINUED.
Those two are final: nothing leaves them ("may no longer be updated", 0110 / A710).
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """Performed Procedure Step Status (0040,0252), as the modality sends it and we store it."""

    IN_PROGRESS = "IN PROGRESS"
    COMPLETED = "COMPLETED"
    DISCONTINUED = "DISCONTINUED"


class Action(StrEnum):
    UPDATE = "update"  # more attributes while the exam runs
    COMPLETE = "complete"  # steps -> completed, exam.completed
    DISCONTINUE = "discontinue"  # steps -> discontinued, exam.completed(discontinued)


TRANSITIONS: dict[tuple[State, Action], State] = {
    (State.IN_PROGRESS, Action.UPDATE): State.IN_PROGRESS,
    (State.IN_PROGRESS, Action.COMPLETE): State.COMPLETED,
    (State.IN_PROGRESS, Action.DISCONTINUE): State.DISCONTINUED,
}

REQUESTED: dict[State, Action] = {
    State.IN_PROGRESS: Action.UPDATE,
    State.COMPLETED: Action.COMPLETE,
    State.DISCONTINUED: Action.DISCONTINUE,
}
"""What an N-SET asks for, by the status it sends (the status it already has, if it sends none)."""


class InvalidTransition(Exception):
    def __init__(self, state: State | str, action: Action):
        super().__init__(f"cannot {action.value} an MPPS that is {state}")
        self.state = str(state)
        self.action = action


def next_state(state: State | str, action: Action) -> State:
    """The status after `action` in `state` (as stored, text), or InvalidTransition."""
    try:
        return TRANSITIONS[(State(state), action)]
    except (KeyError, ValueError):
        raise InvalidTransition(state, action) from None
