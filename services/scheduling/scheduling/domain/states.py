"""The appointment lifecycle as a table: `(event, state) -> new state`, FHIR R4 Appointment statuses.

Statuses are FHIR's (http://hl7.org/fhir/R4/valueset-appointmentstatus.html). Transitions only go
forward: nothing leaves cancelled, noshow, fulfilled or entered-in-error, and a reschedule keeps the
status (only the time and place change). `NEW` is the state of an appointment not yet stored.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
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


NEW = "new"


class Event(StrEnum):
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
LIVE_IN_ROOM = frozenset({Status.PENDING, Status.BOOKED, Status.ARRIVED, Status.CHECKED_IN, Status.FULFILLED})
FINAL = frozenset({Status.CANCELLED, Status.NOSHOW, Status.FULFILLED, Status.ENTERED_IN_ERROR})

S, E = Status, Event
TRANSITIONS: dict[tuple[Event, str], Status] = {
    (E.PROPOSE, NEW): S.PROPOSED,
    (E.WAITLIST, NEW): S.WAITLIST,
    (E.WAITLIST, S.PROPOSED): S.WAITLIST,
    (E.HOLD, NEW): S.PENDING,
    (E.HOLD, S.PROPOSED): S.PENDING,
    (E.HOLD, S.WAITLIST): S.PENDING,
    (E.BOOK, NEW): S.BOOKED,
    (E.BOOK, S.PROPOSED): S.BOOKED,
    (E.BOOK, S.WAITLIST): S.BOOKED,
    (E.BOOK, S.PENDING): S.BOOKED,
    (E.RESCHEDULE, S.PENDING): S.PENDING,
    (E.RESCHEDULE, S.BOOKED): S.BOOKED,
    (E.ARRIVE, S.BOOKED): S.ARRIVED,
    (E.CHECK_IN, S.BOOKED): S.CHECKED_IN,
    (E.CHECK_IN, S.ARRIVED): S.CHECKED_IN,
    (E.FULFIL, S.ARRIVED): S.FULFILLED,
    (E.FULFIL, S.CHECKED_IN): S.FULFILLED,
    (E.CANCEL, S.PROPOSED): S.CANCELLED,
    (E.CANCEL, S.WAITLIST): S.CANCELLED,
    (E.CANCEL, S.PENDING): S.CANCELLED,
    (E.CANCEL, S.BOOKED): S.CANCELLED,
    (E.CANCEL, S.ARRIVED): S.CANCELLED,
    (E.CANCEL, S.CHECKED_IN): S.CANCELLED,
    (E.EXPIRE, S.PENDING): S.CANCELLED,
    (E.NO_SHOW, S.BOOKED): S.NOSHOW,
    **{(E.ERROR, s): S.ENTERED_IN_ERROR for s in Status if s is not S.ENTERED_IN_ERROR},
}


class TransitionRefused(ValueError):
    """The event does not apply in the appointment's current status."""

    def __init__(self, event: Event, state: str):
        super().__init__(f"cannot {event.value} an appointment that is {state}")
        self.event = event
        self.state = state


def next_status(event: Event, state: str) -> Status:
    """The status after `event` in `state`, or TransitionRefused."""
    try:
        return TRANSITIONS[(event, state)]
    except KeyError:
        raise TransitionRefused(event, state) from None


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
