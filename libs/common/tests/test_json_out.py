"""One datetime form in every JSON answer: an aware datetime is written by isoformat() (`+00:00`, never
`Z`), in a response model's named fields, in the row columns it passes on and inside lists and mappings,
so a route that formats a time itself and one whose model writes it answer alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from fastapi import FastAPI
from imaging_common.json_out import Out, listing
from imaging_testing import asgi_client

SHANGHAI = timezone(timedelta(hours=8))
T = datetime(2026, 12, 7, 9, 30, 15, 250000, tzinfo=UTC)


class Row(Out):
    created_at: datetime
    closed_at: datetime | None = None


class Page(Out):
    at: datetime
    rows: list[Row]
    detail: dict[str, Any] = {}
    count: int


def test_every_aware_datetime_is_written_with_its_numeric_offset() -> None:
    page = Page(at=T, count=1, detail={"window": [T, T.astimezone(SHANGHAI)]},
                rows=[Row(created_at=T, passed_on=T, nested={"when": T})], generated=T, naive=datetime(2026, 12, 7))
    assert page.model_dump(mode="json") == {
        "at": "2026-12-07T09:30:15.250000+00:00",
        "rows": [{"created_at": "2026-12-07T09:30:15.250000+00:00", "closed_at": None,
                  "passed_on": "2026-12-07T09:30:15.250000+00:00",
                  "nested": {"when": "2026-12-07T09:30:15.250000+00:00"}}],
        "detail": {"window": ["2026-12-07T09:30:15.250000+00:00", "2026-12-07T17:30:15.250000+08:00"]},
        "count": 1,
        "generated": "2026-12-07T09:30:15.250000+00:00",
        "naive": "2026-12-07T00:00:00",
    }
    assert "Z" not in page.model_dump_json()
    assert page.model_dump()["at"] is T  # Python mode keeps the datetime itself


async def test_a_route_answers_the_same_form_as_a_time_it_formats_itself() -> None:
    app = FastAPI()

    @app.get("/page", response_model=Page)
    async def page() -> dict[str, Any]:
        rows = [{"created_at": T, "closed_at": T.isoformat(), "note": "closed"}]
        return {"at": T, "rows": rows, **listing(rows)}

    async with asgi_client(app) as client:
        body = (await client.get("/page")).json()
        schema = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert body["at"] == T.isoformat() == body["rows"][0]["created_at"] == body["rows"][0]["closed_at"]
    assert body["count"] == 1 and body["rows"][0]["note"] == "closed"
    # The serializer leaves the documented shape alone: named fields, their formats, other columns allowed.
    assert schema["Page"]["properties"]["at"] == {"type": "string", "format": "date-time", "title": "At"}
    assert set(schema["Row"]["properties"]) == {"created_at", "closed_at"}
    assert schema["Row"]["additionalProperties"] is True
