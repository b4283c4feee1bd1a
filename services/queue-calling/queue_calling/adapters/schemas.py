"""The queue API's answers: imaging_common.json_out.Out models (documented in OpenAPI, checked by FastAPI)."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from imaging_common.json_out import Out


class Entry(Out):
    """A queue entry as terminals see it (domain.entries.public_entry: the table queue_entry)."""

    entry_id: str
    queue_id: str
    ticket: str
    state: str
    accession_number: str
    order_id: str
    appointment_id: str | None
    appointment_start: datetime | None
    empi_id: str
    patient_id: str
    patient_name: str
    sex: str
    age: int | None
    exam_name: str
    modality: str
    preparation: str
    technologist: str | None
    priority_level: int
    priority_reasons: list[str]
    special: dict[str, Any]
    on_time: bool
    sort_key: float
    room_id: str | None
    call_count: int
    skip_count: int
    return_at_seq: int | None
    return_at: datetime | None
    arrived_at: datetime
    first_called_at: datetime | None
    called_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    last_notified_ahead: int | None
    version: int


class Waiting(Entry):
    number_ahead: int
    estimated_wait_minutes: int | float


class CheckedIn(Out):
    data: list[Waiting]
    count: int


class Paused(Out):
    queue_id: str
    paused: bool


class Subscribed(Out):
    entry_id: str
    channel: str


class TerminalRoom(Out):
    room_id: str
    name: str
    door_cap: int  # patients staged at the door


class TerminalQueue(Out):
    """A queue the room calls from, with its entries by state."""

    queue_id: str
    name: str
    paused: bool
    waiting: list[Waiting]
    called: list[Entry]
    skipped: list[Entry]
    in_exam: list[Entry]


class TerminalView(Out):
    room: TerminalRoom
    queues: list[TerminalQueue]


class LogItem(Out):
    """One line of an entry's operation log (table entry_log)."""

    log_id: int
    entry_id: str
    at: datetime
    action: str
    from_state: str | None
    to_state: str
    actor: str
    terminal: str | None
    queue_id: str | None
    room_id: str | None
    detail: dict[str, Any]


class EntryLog(Out):
    data: list[LogItem]
    count: int


class QueueSaved(Out):
    """A queue as it was put (the request's fields)."""

    queue_id: str
    name: str
    ticket_prefix: str
    policy: dict[str, Any]
    skip_rule: dict[str, Any]
    avg_service_minutes: float


class RoomSaved(Out):
    """A room as it was put (the request's fields)."""

    room_id: str
    name: str
    door_cap: int
    active: bool
    queue_ids: list[str]


class RuleAdded(Out):
    """A placement rule as it was added (the request's fields)."""

    rule_id: int
    queue_id: str
    rank: int
    modality: str | None
    exam_code_prefix: str | None
    preparation: str | None
    room_id: str | None
    technologist: str | None


class DayStats(Out):
    """One queue's or room's day; its id is `queue_id` or `room_id` as grouped; times in minutes."""

    day: str
    arrived: int
    called: int
    done: int
    cancelled: int
    wait_avg_min: float | None
    wait_p50_min: float | None
    wait_max_min: float | None
    walk_avg_min: float | None
    walk_p50_min: float | None
    service_avg_min: float | None
    service_p50_min: float | None


class DayStatsList(Out):
    data: list[DayStats]
    count: int


class Queue(Out):
    """A queue (table queue) and the rooms that call from it."""

    queue_id: str
    name: str
    ticket_prefix: str
    paused: bool
    policy: dict[str, Any]
    skip_rule: dict[str, Any]
    avg_service_minutes: float
    priority_streak: int
    call_seq: int
    room_ids: list[str]


class Queues(Out):
    data: list[Queue]
    count: int


class Room(Out):
    """A room (table room) and the queues it calls from, in round-robin order."""

    room_id: str
    name: str
    door_cap: int
    rr_cursor: int
    view_seq: int
    active: bool
    queue_ids: list[str]


class Rooms(Out):
    data: list[Room]
    count: int


class Rule(Out):
    rule_id: int
    rank: int
    queue_id: str
    modality: str | None
    exam_code_prefix: str | None
    preparation: str | None
    room_id: str | None
    technologist: str | None


class Rules(Out):
    data: list[Rule]
    count: int


class Screen(Out):
    """A screen (table screen); its token is what its URL carries."""

    screen_id: str
    token: str
    kind: str
    title: str
    room_ids: list[str]
    layout: dict[str, Any]
    on_time: time | None
    off_time: time | None
    mask_rule: dict[str, Any]
    speech: bool
    updated_at: datetime


class ScreenSaved(Screen):
    url: str  # the screen's page, token included


class ListedScreen(Screen):
    connected: int  # screens showing it now


class Screens(Out):
    data: list[ListedScreen]
    count: int
