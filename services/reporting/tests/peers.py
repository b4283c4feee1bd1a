"""Test receivers speaking the real protocols: an HL7 v2 receiver on MLLP (imaging_common.hl7's
server and MessageService, as a HIS would run) and a FHIR R4 server over HTTP (a small FastAPI
app accepting transaction Bundles, every one and its resources validated with fhir.resources' R4B
models and refused 400 otherwise, served by uvicorn)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fhir.resources.R4B.bundle import Bundle
from imaging_common.hl7 import HL7Error, Message, MessageService, MLLPServer
from imaging_common.hl7 import ack as acks
from imaging_testing import http_server


@dataclass
class HL7Receiver:
    messages: list[Message] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    reject_next: int = 0  # answer AE this many times (then accept)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    async def handle(self, message: Message) -> str | None:
        if self.reject_next > 0:
            self.reject_next -= 1
            raise HL7Error(acks.APPLICATION_INTERNAL_ERROR, "receiver busy, try again", "MSH", 1, None)
        self.messages.append(message)
        self.arrived.set()
        return None

    def for_accession(self, accession: str) -> list[Message]:
        return [m for m in self.messages if m.field("OBR", 3) == accession]


@contextlib.asynccontextmanager
async def hl7_receiver(default_charset: str = "utf-8") -> AsyncIterator[HL7Receiver]:
    receiver = HL7Receiver()
    service = MessageService(receiver.handle, application="HIS", facility="HOSPITAL", default_charset=default_charset)

    async def recording(payload: bytes, peer: tuple[str, int]) -> bytes:
        receiver.raw.append(payload)
        return await service(payload, peer)

    async with MLLPServer(recording, "127.0.0.1", 0) as server:
        receiver.port = server.port
        yield receiver


@dataclass
class FHIRStore:
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)  # "Type/id" -> resource
    history: list[dict[str, Any]] = field(default_factory=list)  # every DiagnosticReport PUT, in order
    refused: list[str] = field(default_factory=list)  # why each Bundle that is not valid R4B was refused
    fail_next: int = 0
    url: str = ""


def fhir_app(store: FHIRStore) -> FastAPI:
    app = FastAPI()

    @app.post("/")
    async def transaction(request: Request) -> JSONResponse:
        if store.fail_next > 0:
            store.fail_next -= 1
            return JSONResponse({"resourceType": "OperationOutcome", "issue": [
                {"severity": "error", "code": "transient", "diagnostics": "busy"}]}, status_code=503)
        body = await request.json()
        try:
            bundle = Bundle.model_validate(body)
        except Exception as exc:
            store.refused.append(str(exc)[:500])
            return JSONResponse({"resourceType": "OperationOutcome", "issue": [
                {"severity": "error", "code": "invalid", "diagnostics": str(exc)[:500]}]}, status_code=400)
        if bundle.type != "transaction":
            return JSONResponse({"resourceType": "OperationOutcome", "issue": [
                {"severity": "error", "code": "invalid", "diagnostics": "transaction expected"}]}, status_code=400)
        responses = []
        for entry in body["entry"]:
            resource = entry["resource"]
            key = f"{resource['resourceType']}/{resource['id']}"
            created = key not in store.resources
            store.resources[key] = resource
            if resource["resourceType"] == "DiagnosticReport":
                store.history.append(resource)
            responses.append({"response": {"status": "201 Created" if created else "200 OK", "location": key}})
        return JSONResponse({"resourceType": "Bundle", "type": "transaction-response", "entry": responses},
                            media_type="application/fhir+json")

    @app.get("/DiagnosticReport/{rid}")
    async def read(rid: str) -> JSONResponse:
        found = store.resources.get(f"DiagnosticReport/{rid}")
        return JSONResponse(found or {"resourceType": "OperationOutcome"}, status_code=200 if found else 404)

    return app


@contextlib.asynccontextmanager
async def fhir_server() -> AsyncIterator[FHIRStore]:
    store = FHIRStore()
    async with http_server(fhir_app(store)) as url:
        store.url = url
        yield store


async def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
