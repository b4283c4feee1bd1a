"""The critical-value lifecycle as a table: (state, action) -> next state (standard 7.1.3 (1), (3)).

    awaiting-confirmation --confirm--> notifying --delivered--> notified --acknowledge--> closed
    awaiting-confirmation --reject--> rejected      (the senior doctor did not confirm the finding)
    notifying / notified --acknowledge--> closed      (the clinician answered: the loop is closed)
    any open state --document--> closed               (manual "documented only" record, e.g. phoned)
"""

from __future__ import annotations

from critical_values.domain.errors import Conflict

AWAITING_CONFIRMATION = "awaiting-confirmation"
NOTIFYING = "notifying"
NOTIFIED = "notified"
CLOSED = "closed"
REJECTED = "rejected"
OPEN_STATES = (AWAITING_CONFIRMATION, NOTIFYING, NOTIFIED)

TRANSITIONS: dict[tuple[str, str], str] = {
    (AWAITING_CONFIRMATION, "confirm"): NOTIFYING,
    (AWAITING_CONFIRMATION, "reject"): REJECTED,
    (AWAITING_CONFIRMATION, "document"): CLOSED,
    (NOTIFYING, "delivered"): NOTIFIED,
    (NOTIFYING, "acknowledge"): CLOSED,
    (NOTIFYING, "document"): CLOSED,
    (NOTIFIED, "delivered"): NOTIFIED,
    (NOTIFIED, "acknowledge"): CLOSED,
    (NOTIFIED, "document"): CLOSED,
}


class InvalidTransition(Conflict):
    def __init__(self, state: str, action: str):
        super().__init__(f"cannot {action} a critical value that is {state}")
        self.state = state
        self.action = action


def next_state(state: str, action: str) -> str:
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise InvalidTransition(state, action) from None
