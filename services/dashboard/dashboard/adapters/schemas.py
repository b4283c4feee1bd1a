"""JSON answers of the dashboard (imaging_common.json_out.Out: columns not named are passed on)."""

from __future__ import annotations

from datetime import datetime, time
from typing import Literal

from imaging_common.json_out import Out
from pydantic import BaseModel, Field


class FigureRow(Out):
    period: str
    key: str


class Figures(Out):
    metric: str
    start: datetime
    end: datetime
    period: str
    group_by: str
    data: list[FigureRow]
    count: int


class ExamRow(Out):
    accession_number: str
    modality: str | None = None
    patient_name: str | None = None


class Exams(Out):
    data: list[ExamRow]
    count: int


class DeviceIn(BaseModel):
    kind: Literal["modality", "printer"]
    name: str = Field(min_length=1, max_length=120)
    ae_title: str = Field(min_length=1, max_length=16, pattern=r"^[\x20-\x5b\x5d-\x7e]*[^ ][\x20-\x5b\x5d-\x7e]*$")
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(ge=1, le=65535)
    modality: str | None = Field(default=None, max_length=16)
    room_id: str | None = Field(default=None, max_length=64)
    campus: str | None = Field(default=None, max_length=64)
    opens: time = time(8, 0)
    closes: time = time(18, 0)
    active: bool = True


class Device(Out):
    device_id: str
    kind: str
    name: str
    ae_title: str
    state: Literal["unknown", "unreachable", "in_exam", "online", "idle"] | None = None
    last_seen_at: datetime | None = None
    today_exams: int | None = None


class Devices(Out):
    now: datetime
    data: list[Device]
    count: int


class MaintenanceIn(BaseModel):
    kind: Literal["preventive", "repair", "calibration", "inspection"]
    started_at: datetime
    ended_at: datetime | None = None
    note: str = Field(default="", max_length=2000)


class Maintenance(Out):
    maintenance_id: int
    device_id: str
    kind: str
    started_at: datetime
    ended_at: datetime | None = None
    note: str
    recorded_by: str


class MaintenanceList(Out):
    data: list[Maintenance]
    count: int


class ScreenIn(BaseModel):
    title: str = Field(min_length=1, max_length=120)
    new_token: bool = False


class Screen(Out):
    screen_id: str
    title: str
    token: str


class Today(Out):
    now: datetime
    flow: list[dict[str, object]]
    open_critical: int
    under_way: list[dict[str, object]]


class PlanIn(BaseModel):
    percent: float = Field(ge=0, le=100)


class Plan(Out):
    kind: str
    modality: str
    percent: float


class Plans(Out):
    data: list[Plan]
    count: int


class QcItem(Out):
    kind: str
    accession_number: str
    modality: str | None = None
    person: str | None = None
    drawn_at: datetime
    reviews: list[dict[str, object]]


class QcItems(Out):
    data: list[QcItem]
    count: int


class ReviewIn(BaseModel):
    grade: Literal["甲", "乙", "丙", "丁"] | None = None
    score: int | None = Field(default=None, ge=0, le=100)
    reasons: list[str] = Field(default_factory=list, max_length=20)
    note: str = Field(default="", max_length=2000)


class Review(Out):
    review_id: int
    kind: str
    accession_number: str
    reader: str
    reviewer: str
    grade: str | None = None
    score: int | None = None
    reasons: list[str]


class QcStatsRow(Out):
    month: str
    person: str
    reviews: int


class QcStats(Out):
    kind: str
    data: list[QcStatsRow]
    count: int
