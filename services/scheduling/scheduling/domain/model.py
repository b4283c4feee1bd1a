"""What scheduling works with, as plain data read from its tables."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, time
from typing import Any, Literal, TypeVar

T = TypeVar("T")

# Booking channels of smart-imaging standard 5.3.2 (1): booking center, online, kiosk, triage desk,
# outpatient doctor, ward nurse and inpatient doctor workstations.
Channel = Literal[
    "booking-center",
    "online",
    "kiosk",
    "front-desk",
    "outpatient-doctor",
    "ward-nurse",
    "inpatient-doctor",
]
CHANNELS: tuple[str, ...] = Channel.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Room:
    id: str
    name: str
    modality: str
    campus: str
    building: str = ""
    floor: str = ""
    location: str = ""
    route: str = ""
    station_ae_title: str | None = None
    capabilities: frozenset[str] = frozenset()
    slice_minutes: int = 10
    active: bool = True

    @classmethod
    def from_row(cls, r: Any) -> Room:
        return _from_row(cls, r, capabilities=frozenset)


@dataclass(frozen=True)
class Session:
    """A room's working period on one weekday, local time."""

    room_id: str
    weekday: int
    starts: time
    ends: time
    label: str = ""


@dataclass(frozen=True)
class RosterEntry:
    technologist_id: str
    room_id: str
    weekday: int
    starts: time
    ends: time


@dataclass(frozen=True)
class ExamType:
    code: str
    name: str
    modality: str
    duration_minutes: int
    preparation_minutes: int = 0
    body_part: str | None = None
    contrast: str = "none"
    fasting: bool = False
    required_capabilities: frozenset[str] = frozenset()
    preparation: str = ""

    @classmethod
    def from_row(cls, r: Any) -> ExamType:
        return _from_row(cls, r, required_capabilities=frozenset)


@dataclass(frozen=True)
class Ward:
    code: str
    campus: str
    building: str = ""


@dataclass(frozen=True)
class ExamRequest:
    """One exam item of an order, waiting for (or holding) an appointment."""

    order_id: str
    exam_code: str
    accession_number: str
    exam_name: str
    modality: str
    empi_id: str
    patient: dict[str, Any]
    patient_class: str = "outpatient"
    ward: str | None = None
    special: dict[str, Any] = field(default_factory=dict)
    priority: str = "routine"
    status: str = "open"

    @property
    def critical(self) -> bool:
        return bool(self.special.get("critical")) or self.priority == "stat"

    @property
    def mdr(self) -> bool:
        return bool(self.special.get("mdr"))

    @classmethod
    def from_row(cls, r: Any) -> ExamRequest:
        return _from_row(cls, r, patient=_json, special=_json)


@dataclass(frozen=True)
class PlannedExam:
    """An exam of the patient placed in time: stored, or proposed in the plan being built."""

    exam: ExamType
    start: datetime
    end: datetime
    room_id: str
    appointment_id: str | None = None


@dataclass(frozen=True)
class Placement:
    """A candidate booking: this request, this room, this time."""

    request: ExamRequest
    exam: ExamType
    room: Room
    start: datetime
    end: datetime
    channel: str
    technologist_id: str | None = None

    @property
    def arrive_by(self) -> datetime:
        from datetime import timedelta

        return self.start - timedelta(minutes=self.exam.preparation_minutes)


def _from_row(cls: type[T], r: Any, **convert: Callable[[Any], Any]) -> T:
    """`cls` with every field read from the row's column of the same name, through `convert[field]` if given."""
    return cls(**{f.name: convert.get(f.name, _as_is)(r[f.name]) for f in fields(cls)})  # type: ignore[arg-type]


def _as_is(value: Any) -> Any:
    return value


def _json(value: Any) -> dict[str, Any]:
    import json

    if isinstance(value, str):
        return dict(json.loads(value))
    return dict(value or {})
