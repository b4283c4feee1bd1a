"""The appointment receipt (smart-imaging standard 5.3.3, 5.3.5): when and where to come, how to
prepare and how to get there, as data and as a printable page."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent.parent / "templates"), autoescape=select_autoescape(["html"])
)


def receipt(a: dict[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    """What the patient needs, in local time."""
    start = a["start"].astimezone(tz)
    end = a["end"].astimezone(tz)
    arrive_by = start - timedelta(minutes=a["preparation_minutes"] + 10)  # ten minutes to check in
    place = " ".join(x for x in (a["campus"], a["building"], a["floor"], a["location"] or a["room_name"]) if x)
    patient = a["patient"]
    return {
        "appointment_id": a["id"],
        "status": a["status"],
        "accession_number": a["accession_number"],
        "patient": {"name": patient.get("name"), "patient_id": patient.get("patient_id")},
        "exam": {"code": a["exam_code"], "name": a["exam_name"], "modality": a["modality"]},
        "date": start.date().isoformat(),
        "start": start.isoformat(),
        "end": end.isoformat(),
        "time": f"{start:%Y-%m-%d %H:%M}–{end:%H:%M}",
        "arrive_by": arrive_by.isoformat(),
        "place": place,
        "room": {
            "id": a["room_id"],
            "name": a["room_name"],
            "campus": a["campus"],
            "building": a["building"],
            "floor": a["floor"],
        },
        "preparation": a["preparation"] or "无特殊准备 / No special preparation",
        "fasting": a["fasting"],
        "route": a["route"] or "请到影像中心分诊台咨询 / Ask at the imaging center front desk",
        "steps": [
            f"{arrive_by:%H:%M} 前到达{a['campus'] or ''}影像中心分诊台签到 / check in by {arrive_by:%H:%M}",
            "按叫号屏提示到检查室候诊 / wait to be called on the screen",
            f"在 {a['room_name']} 完成检查 / exam in {a['room_name']}",
        ],
        "timezone": str(tz),
    }


def render_html(data: dict[str, Any]) -> str:
    return _env.get_template("receipt.html").render(r=data)
