"""The critical-value lifecycle as a table: (state, action) -> next state (standard 7.1.3 (1), (3)).

    awaiting-confirmation --confirm--> notifying --delivered--> notified --acknowledge--> closed
    awaiting-confirmation --reject--> rejected      (the senior doctor did not confirm the finding)
    notifying / notified --acknowledge--> closed      (the clinician answered: the loop is closed)
    any open state --document--> closed               (manual "documented only" record, e.g. phoned)
"""

from __future__ import annotations

from enum import StrEnum

from critical_values.domain.errors import Conflict


class State(StrEnum):
    AWAITING_CONFIRMATION = "awaiting-confirmation"
    NOTIFYING = "notifying"
    NOTIFIED = "notified"
    CLOSED = "closed"
    REJECTED = "rejected"


class Action(StrEnum):
    CONFIRM = "confirm"  # a senior doctor confirms the finding
    REJECT = "reject"  # ... or does not
    DELIVERED = "delivered"  # a notification reached the clinician's system
    ACKNOWLEDGE = "acknowledge"  # the clinician answered
    DOCUMENT = "document"  # closed by a manual record (phoned, documented only)


# The names the rest of the service reads (the values are the states stored in critical_value.state).
AWAITING_CONFIRMATION, NOTIFYING, NOTIFIED, CLOSED, REJECTED = (
    State.AWAITING_CONFIRMATION, State.NOTIFYING, State.NOTIFIED, State.CLOSED, State.REJECTED)
OPEN_STATES = (AWAITING_CONFIRMATION, NOTIFYING, NOTIFIED)

TRANSITIONS: dict[tuple[State, Action], State] = {
    (AWAITING_CONFIRMATION, Action.CONFIRM): NOTIFYING,
    (AWAITING_CONFIRMATION, Action.REJECT): REJECTED,
    (AWAITING_CONFIRMATION, Action.DOCUMENT): CLOSED,
    (NOTIFYING, Action.DELIVERED): NOTIFIED,
    (NOTIFYING, Action.ACKNOWLEDGE): CLOSED,
    (NOTIFYING, Action.DOCUMENT): CLOSED,
    (NOTIFIED, Action.DELIVERED): NOTIFIED,
    (NOTIFIED, Action.ACKNOWLEDGE): CLOSED,
    (NOTIFIED, Action.DOCUMENT): CLOSED,
}


class InvalidTransition(Conflict):
    def __init__(self, state: str, action: str):
        super().__init__(f"cannot {action} a critical value that is {state}")
        self.state = str(state)
        self.action = str(action)


def next_state(state: State | str, action: Action | str) -> State:
    """The state after `action` in `state` (a stored state is read as text), or InvalidTransition."""
    try:
        return TRANSITIONS[(State(state), Action(action))]
    except (KeyError, ValueError):
        raise InvalidTransition(state, action) from None
