"""SQL injection and oversized input on search fields: refused cleanly or answered harmlessly.

Every string query parameter of every GET route in the OpenAPI documents gets SQL injection
payloads (with a token holding every role, so the request reaches the query); the search bodies
(patient search and match, slot finding) get them too. Then 1 MB query values and 10 MB JSON
bodies. Nothing may answer 5xx or hang; a refusal is a problem+json document; and afterwards every
table of the sandbox holds exactly what it held before (the audit trail of the reads aside).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from security.conftest import Sandbox
from security.openapi_routes import Operation
from security.unavailable import connect, send

PAYLOADS = [
    "' OR '1'='1",
    "'; DROP TABLE patients; --",
    "\" OR \"\"=\"",
    "1' UNION SELECT NULL, current_user --",
    "%' OR 1=1 --",
    "'); SELECT pg_sleep(5); --",
    "\\'; DELETE FROM orders; --",
    "x\x00' OR 1=1 --",  # PostgreSQL text cannot hold NUL: must be a 4xx, not a driver error
    "张伟' OR 'a'='a",
]
ONE_MB = "A" * (1 << 20)
# Rows that reads add on purpose; every other table must come out unchanged.
WRITTEN_BY_READS = {"audit_log", "audit_chain"}


def _string_params(op: Operation) -> list[str]:
    def is_string(schema: dict[str, Any]) -> bool:
        return schema.get("type") == "string" or any(s.get("type") == "string" for s in schema.get("anyOf", []))

    return [name for name, schema in op.query_params.items() if is_string(schema)]


async def _digest(database_url: str) -> dict[str, str]:
    """An md5 of the content of every table, schema-qualified."""
    conn = await connect(database_url)
    try:
        tables = await conn.fetch(
            """SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'
               AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2""")
        digest = {}
        for t in tables:
            if t["table_name"] in WRITTEN_BY_READS:
                continue
            name = f'"{t["table_schema"]}"."{t["table_name"]}"'
            digest[name] = await conn.fetchval(
                f"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {name} t")
        return digest
    finally:
        await conn.close()


async def _settled(database_url: str) -> dict[str, str]:
    """The digest once the seeding's events have gone round (two equal readings in a row)."""
    previous = await _digest(database_url)
    for _ in range(60):
        await asyncio.sleep(0.5)
        current = await _digest(database_url)
        if current == previous:
            return current
        previous = current
    raise AssertionError("the sandbox never settled")


def _clean(r: httpx.Response, what: str) -> str | None:
    """A problem if the answer is a server error or an unstructured refusal."""
    if r.status_code >= 500:
        return f"{what}: {r.status_code} {r.text[:300]}"
    if 400 <= r.status_code < 500 and r.status_code not in (414, 431) \
            and not r.headers.get("content-type", "").startswith(("application/problem+json", "application/fhir+json")):
        return f"{what}: {r.status_code} with content-type {r.headers.get('content-type')}"
    return None


async def _raw_get(base_url: str, target: str, headers: dict[str, str]) -> tuple[int, str]:
    """(status, content-type) of a GET sent over a plain socket: httpx will not send a 1 MB URL."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        lines = [f"GET {target} HTTP/1.1", f"Host: {host}", "Connection: close",
                 *(f"{k}: {v}" for k, v in headers.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)).decode("latin-1")
    finally:
        writer.close()
    status = int(head.split(" ", 2)[1])
    content_type = next((line.split(":", 1)[1].strip() for line in head.split("\r\n")
                         if line.lower().startswith("content-type:")), "")
    return status, content_type


async def _seed(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    r = await client.post("/api/registration/patients", headers=headers, json={
        "name": "安全测试", "phone": "13900001111", "force_new": True,
        "identifiers": [{"type": "hospital-card", "value": f"SEC{uuid.uuid4().hex[:12]}"}]})
    assert r.status_code == 201, r.text
    patient = r.json()["patient"]
    r = await client.post("/api/registration/orders", headers=headers, json={
        "empi_id": patient["empi_id"], "ordering_department": "安全科", "items": [
            {"code": "CT-CHEST", "name": "胸部CT平扫", "modality": "CT", "body_part": "CHEST"}]})
    assert r.status_code == 201, r.text
    return {"patient": patient, "order": r.json()}


async def test_injection_and_oversized_input_are_refused_cleanly_and_change_nothing(sandbox: Sandbox) -> None:
    everyone = sandbox.everyone
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=60) as client:
        seeded = await _seed(client, everyone)
        before = await _settled(sandbox.database_url)
        operations = [op for ops in (await sandbox.operations()).values() for op in ops
                      if op.method == "GET" and _string_params(op)]
        problems: list[str] = []
        gate = asyncio.Semaphore(4)

        async def call(what: str, method: str, url: str, **kwargs: Any) -> None:
            kwargs.setdefault("headers", everyone)
            async with gate:
                try:
                    r = await asyncio.wait_for(send(client, method, url, **kwargs), 120)
                except (TimeoutError, httpx.TimeoutException):
                    problems.append(f"{what}: no answer within 60 s")
                    return
            problem = _clean(r, what)
            if problem:
                problems.append(problem)

        jobs = [call(f"{op} ?{name}={payload!r}", "GET", op.url(), params={name: payload})
                for op in operations for name in _string_params(op) for payload in PAYLOADS]
        bodies = {"/api/registration/patients/search": lambda v: {"q": v},
                  "/api/registration/patients/match": lambda v: {"name": v, "phone": v},
                  "/api/scheduling/find": lambda v: {"order_id": v, "exam_code": v}}
        jobs += [call(f"POST {path} {payload!r}", "POST", path, json=body(payload))
                 for path, body in bodies.items() for payload in PAYLOADS]
        await asyncio.gather(*jobs)
        injected = len(jobs)

        # Oversized: a 1 MB value in each searchable GET, 10 MB JSON bodies on the search POSTs.
        async def oversized_get(op: Operation) -> None:
            async with gate:
                try:
                    status, content_type = await _raw_get(sandbox.url, f"{op.url()}?{_string_params(op)[0]}={ONE_MB}",
                                                          everyone)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
                    problems.append(f"{op} <1 MB query>: no answer ({type(exc).__name__})")
                    return
            if not 400 <= status < 500:
                problems.append(f"{op} <1 MB query>: {status} {content_type}")

        jobs = [oversized_get(op) for op in operations]
        huge = "B" * (10 << 20)
        jobs += [call(f"POST {path} <10 MB>", "POST", path, json=body(huge)) for path, body in bodies.items()]
        jobs += [call(f"POST {path} <10 MB of list>", "POST", path, content=b"[" + b"1," * (5 << 20) + b"1]",
                      headers={**everyone, "content-type": "application/json"}) for path in bodies]
        await asyncio.gather(*jobs)
        print(f"\ninjection requests: {injected} over {len(operations)} GET routes and {len(bodies)} search bodies; "
              f"oversized requests: {len(jobs)}")
        assert not problems, "\n".join(problems)

        # Parameterised queries: the classic tautology finds nobody, and the seeded data is intact.
        r = await client.get("/api/registration/patients", params={"q": "' OR '1'='1"}, headers=everyone)
        assert r.status_code in (200, 422) and seeded["patient"]["empi_id"] not in r.text, r.text
        r = await client.get(f"/api/registration/patients/{seeded['patient']['empi_id']}", headers=everyone)
        assert r.status_code == 200 and r.json()["name"] == "安全测试", r.text
        r = await client.get(f"/api/registration/orders/{seeded['order']['accession_number']}", headers=everyone)
        assert r.status_code == 200, r.text
    after = await _digest(sandbox.database_url)
    changed = [t for t in before.keys() | after.keys() if before.get(t) != after.get(t)]
    assert not changed, f"tables changed by hostile input: {changed}"


async def test_a_nul_character_in_a_search_is_a_422_not_a_server_error(sandbox: Sandbox) -> None:
    """Regression: PostgreSQL refuses NUL in text; every search answered 500 (asyncpg DataError)."""
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=30, headers=sandbox.everyone) as client:
        for url, params in (("/api/registration/patients", {"q": "a\x00b"}),
                            ("/api/print/films", {"patient_id": "\x00"}),
                            ("/api/worklist/items", {"patient_name": "x\x00"})):
            r = await client.get(url, params=params)
            assert r.status_code == 422, (url, r.status_code, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
