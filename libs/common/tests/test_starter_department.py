"""The starter department (imaging_common/starter/department.json) holds together: every exam of the
catalogue has a room of its modality, with what it requires, open on weekdays (so booking finds a slot);
every room is called from a queue and shown on a door and a hall screen; names are Chinese."""

from __future__ import annotations

import re

import pytest
from imaging_common.starter import Department, department
from pydantic import ValidationError

CJK = re.compile(r"[\u4e00-\u9fff]")


def test_it_reads_and_names_things_in_chinese() -> None:
    dept = department()
    assert {r.modality for r in dept.rooms} == {"CT", "MR", "DX", "US"}
    assert len(dept.campuses) == 2
    for named in [*dept.rooms, *dept.exam_types, *dept.templates, *dept.queues, *dept.screens, *dept.critical_items]:
        assert CJK.search(named.name if hasattr(named, "name") else named.title), named
    assert all(CJK.search(e.preparation) for e in dept.exam_types)
    assert {"张力性气胸", "主动脉夹层", "颅内出血", "肺栓塞", "消化道穿孔"} <= {i.name for i in dept.critical_items}


def test_every_exam_has_a_room_open_on_weekdays() -> None:
    dept = department()
    for exam in dept.exam_types:
        rooms = [r for r in dept.rooms if r.modality == exam.modality
                 and set(exam.required_capabilities) <= set(r.capabilities)]
        assert rooms, f"no room takes {exam.code}"
        open_days = {d for r in rooms for d, starts, ends, _ in dept.hours(r)
                     if (ends.hour * 60 + ends.minute) - (starts.hour * 60 + starts.minute) >= exam.duration_minutes}
        assert set(range(1, 6)) <= open_days, exam.code
        if exam.contrast != "none":
            assert "contrast" in exam.required_capabilities and exam.preparation_minutes > 0, exam.code


def test_every_room_is_called_and_shown() -> None:
    dept = department()
    for room in dept.rooms:
        queues = [q for q in dept.queues if room.id in q.rooms]
        assert len(queues) == 1 and queues[0].modality == room.modality and queues[0].campus == room.campus, room.id
        kinds = {s.kind for s in dept.screens if room.id in s.rooms}
        assert kinds == {"door", "hall"}, room.id
    walk_in = [q.modality for q in dept.queues if q.walk_in]
    assert sorted(walk_in) == sorted({r.modality for r in dept.rooms})  # one queue per modality for walk-ins


def test_templates_cover_the_common_exams() -> None:
    dept = department()
    covered = {(t.modality, t.body_part) for t in dept.templates}
    for code in ("CT-CHEST", "CT-HEAD", "US-ABD", "MR-KNEE", "DX-CHEST"):
        exam = next(e for e in dept.exam_types if e.code == code)
        assert (exam.modality, exam.body_part) in covered, code
    for modality in ("CT", "MR", "DX", "US"):
        assert {p.section for p in dept.phrases if p.modality == modality} >= {"findings", "impression"}, modality


def test_a_broken_reference_is_refused() -> None:
    data = department().model_dump(mode="json")
    data["queues"][0]["rooms"].append("NOWHERE")
    with pytest.raises(ValidationError, match="unknown rooms"):
        Department.model_validate(data)
    data = department().model_dump(mode="json")
    data["rooms"][0]["schedule"] = "never"
    with pytest.raises(ValidationError, match="unknown schedule"):
        Department.model_validate(data)
