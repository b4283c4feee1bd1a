"""The wall screen's WebSocket: refused without the screen's token (the handshake answered 403), with it sent today's
figures, names masked (an exam under way shows 张**, never the full name)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from imaging_common.events.types import ExamItem, ExamStarted, OrderCreated, PatientRef
from imaging_testing import eventually
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from .conftest import Service


async def test_screen_needs_its_token_and_shows_masked_names(api: httpx.AsyncClient, service: Service,
                                                            emit: Any) -> None:
    uid = uuid.uuid4().hex[:6]
    r = await api.put(f"/screens/hall-{uid}", headers=service.headers("admin"), json={"title": "大厅"})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert (await api.put(f"/screens/x-{uid}", headers=service.headers("senior-radiologist"),
                          json={"title": "x"})).status_code == 403
    ws_url = service.url.replace("http://", "ws://") + "/ui/dashboard/big-screen/ws"

    for wrong in (f"screen=hall-{uid}&token=nope", f"screen=none-{uid}&token={token}", f"screen=hall-{uid}"):
        # Closed before it is accepted: the handshake is answered 403, nothing is sent.
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{ws_url}?{wrong}", open_timeout=10) as ws:
                await asyncio.wait_for(ws.recv(), 10)
        assert refused.value.response.status_code == 403

    patient = PatientRef(empi_id=f"E{uid}", patient_id=f"P{uid}", name="张三丰")
    now = datetime.now(UTC)
    await emit(OrderCreated(order_id=f"O{uid}", accession_number=f"BS{uid}", requested_procedure_id="RP",
                            study_instance_uid="1.2", patient=patient, ordered_at=now, version=1,
                            items=[ExamItem(code="CT-X", name="胸部CT", modality="CT")]), f"BS{uid}")
    await emit(ExamStarted(accession_number=f"BS{uid}", study_instance_uid="1.2", patient=patient, mpps_uid=f"9.{uid}",
                           station_ae_title=f"CT{uid}", modality="CT", started_at=now), f"BS{uid}")

    async with connect(f"{ws_url}?screen=hall-{uid}&token={token}", open_timeout=10) as ws:
        async def masked_row() -> dict[str, Any] | None:
            raw = await asyncio.wait_for(ws.recv(), 10)
            assert "张三丰" not in raw
            figures = json.loads(raw)
            return next((u for u in figures["under_way"] if u["name"] == "张**"), None)

        row = await eventually(masked_row, "the exam under way on the screen")
        assert row["modality"] == "CT"
