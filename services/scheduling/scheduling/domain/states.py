"""The appointment lifecycle as a table: `(state, action) -> new state`, FHIR R4 Appointment statuses.

Statuses are FHIR's (http://hl7.org/fhir/R4/valueset-appointmentstatus.html). Transitions only go
forward: nothing leaves cancelled, noshow, fulfilled or entered-in-error, and a reschedule keeps the
status (only the time and place change). `NEW` is the state of an appointment not yet stored.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    NEW = "new"  # not stored yet: where booking, holding, proposing and waitlisting start (not a FHIR status)
    PROPOSED = "proposed"
    PENDING = "pending"  # a hold: the slot is taken until it expires or is confirmed
    BOOKED = "booked"
    ARRIVED = "arrived"
    CHECKED_IN = "checked-in"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"
    NOSHOW = "noshow"
    ENTERED_IN_ERROR = "entered-in-error"
    WAITLIST = "waitlist"


NEW = State.NEW
STORED = frozenset(State) - {NEW}
"""The statuses an appointment is stored and served with: FHIR's AppointmentStatus codes."""


class Action(StrEnum):
    PROPOSE = "propose"  # suggested, e.g. by $find; takes no slot
    WAITLIST = "waitlist"  # wants a slot, none fits yet
    HOLD = "hold"  # takes the slot for a while (hold_expires_at)
    BOOK = "book"  # takes the slot (or confirms a hold)
    RESCHEDULE = "reschedule"  # new time or room, same status
    ARRIVE = "arrive"  # the patient is at the imaging center (patient.arrived)
    CHECK_IN = "check-in"  # checked in at the room
    FULFIL = "fulfil"  # the exam was done
    CANCEL = "cancel"  # by staff or patient, with a reason
    EXPIRE = "expire"  # a hold ran out
    NO_SHOW = "no-show"  # did not come, with a reason
    ERROR = "enter-in-error"  # the appointment should never have existed


# Statuses that take the room (mirrors the WHERE of the exclusion constraints in 0002).
LIVE_IN_ROOM = frozenset({State.PENDING, State.BOOKED, State.ARRIVED, State.CHECKED_IN, State.FULFILLED})
FINAL = frozenset({State.CANCELLED, State.NOSHOW, State.FULFILLED, State.ENTERED_IN_ERROR})

S, A = State, Action
TRANSITIONS: dict[tuple[State, Action], State] = {
    (NEW, A.PROPOSE): S.PROPOSED,
    (NEW, A.WAITLIST): S.WAITLIST,
    (S.PROPOSED, A.WAITLIST): S.WAITLIST,
    (NEW, A.HOLD): S.PENDING,
    (S.PROPOSED, A.HOLD): S.PENDING,
    (S.WAITLIST, A.HOLD): S.PENDING,
    (NEW, A.BOOK): S.BOOKED,
    (S.PROPOSED, A.BOOK): S.BOOKED,
    (S.WAITLIST, A.BOOK): S.BOOKED,
    (S.PENDING, A.BOOK): S.BOOKED,
    (S.PENDING, A.RESCHEDULE): S.PENDING,
    (S.BOOKED, A.RESCHEDULE): S.BOOKED,
    (S.BOOKED, A.ARRIVE): S.ARRIVED,
    (S.BOOKED, A.CHECK_IN): S.CHECKED_IN,
    (S.ARRIVED, A.CHECK_IN): S.CHECKED_IN,
    (S.ARRIVED, A.FULFIL): S.FULFILLED,
    (S.CHECKED_IN, A.FULFIL): S.FULFILLED,
    (S.PROPOSED, A.CANCEL): S.CANCELLED,
    (S.WAITLIST, A.CANCEL): S.CANCELLED,
    (S.PENDING, A.CANCEL): S.CANCELLED,
    (S.BOOKED, A.CANCEL): S.CANCELLED,
    (S.ARRIVED, A.CANCEL): S.CANCELLED,
    (S.CHECKED_IN, A.CANCEL): S.CANCELLED,
    (S.PENDING, A.EXPIRE): S.CANCELLED,
    (S.BOOKED, A.NO_SHOW): S.NOSHOW,
    **{(s, A.ERROR): S.ENTERED_IN_ERROR for s in State if s not in (NEW, S.ENTERED_IN_ERROR)},
}


class InvalidTransition(ValueError):
    """The action does not apply in the appointment's current status."""

    def __init__(self, state: State | str, action: Action):
        super().__init__(f"cannot {action.value} an appointment that is {state}")
        self.state = state
        self.action = action


def next_state(state: State | str, action: Action) -> State:
    """The status after `action` in `state` (a stored status may be given as text), or InvalidTransition."""
    try:
        return TRANSITIONS[(state, action)]  # type: ignore[index]  # a StrEnum key matches its text
    except KeyError:
        raise InvalidTransition(state, action) from None


_ORDER = {
    NEW: 0,
    S.PROPOSED: 1,
    S.WAITLIST: 1,
    S.PENDING: 2,
    S.BOOKED: 3,
    S.ARRIVED: 4,
    S.CHECKED_IN: 5,
    S.FULFILLED: 6,
    S.CANCELLED: 6,
    S.NOSHOW: 6,
    S.ENTERED_IN_ERROR: 7,
}


def is_forward(before: str, after: str) -> bool:
    """Whether a transition never goes back in the lifecycle (checked over the whole table in tests)."""
    return _ORDER[after] >= _ORDER[before]
