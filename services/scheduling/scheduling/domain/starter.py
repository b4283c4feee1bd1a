"""Scheduling's part of the starter department (imaging_common.starter): rooms with their working hours,
and the exam catalogue. What an admin configured (a room or exam code that exists) is kept as it is; an
exam type made up from an order (auto_created, for an admin to review) is replaced by the catalogue's.
No technologist roster: a room without one needs nobody rostered, and the starter invents no staff."""

from __future__ import annotations

import asyncpg
from imaging_common.starter import Department, Report, Tally

from scheduling.domain import configuration


async def load(conn: asyncpg.Connection, department: Department) -> Report:
    rooms, exam_types = Tally(), Tally()
    existing_rooms = {r["id"] for r in await configuration.rooms_by_id(conn)}
    for room in department.rooms:
        if rooms.add(room.id, room.id not in existing_rooms):
            await configuration.put_room(
                conn, id=room.id, name=room.name, modality=room.modality, campus=department.campus_name(room.campus),
                building=room.building, floor=room.floor, location=room.location, route=room.route,
                station_ae_title=room.station_ae_title, capabilities=list(room.capabilities),
                slice_minutes=room.slice_minutes, active=True)
            await configuration.replace_sessions(conn, room.id, department.hours(room))
    configured = {r["code"]: r["auto_created"] for r in await configuration.exam_types(conn)}
    for exam in department.exam_types:
        if exam_types.add(exam.code, configured.get(exam.code, True)):
            await configuration.put_exam_type(conn, **exam.model_dump())
    return {"rooms": rooms, "exam_types": exam_types}
