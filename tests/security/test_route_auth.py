"""Every route of every service's OpenAPI refuses callers without a valid token or the right role.

Routes come from the OpenAPI documents the platform serves; the roles a route admits come from
its `require_roles(...)` declaration. Each guarded route is called without a token (401), with an
expired token (401), with a token carrying no role (403) and with a token for each real role
outside its declaration (403). Routes without a guard must be on PUBLIC, each with its reason;
the public routes' own checks (kiosk key, share grant, screen token, credentials) are exercised.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter

import httpx
import pytest
from imaging_common.auth.roles import ROLES
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from security.conftest import Sandbox
from security.openapi_routes import Operation, declared_roles, plausible
from security.unavailable import send

# (method, path pattern, why it needs no staff token). Small on purpose: a route lands here only
# when the people calling it cannot hold a staff login, and it then checks something else.
PUBLIC: list[tuple[str, str, str]] = [
    ("GET", r"/api/[^/]+/healthz", "liveness probe: answers 'alive', nothing else"),
    ("GET", r"/api/[^/]+/readyz", "readiness probe: names which dependency is down, no data"),
    ("GET", r"/api/[^/]+/metrics", "Prometheus scrape inside the cluster: counters by route template, no data"),
    ("POST", r"/api/registration/auth/login", "how a token is obtained (password + TOTP, lockout)"),
    ("POST", r"/api/registration/auth/refresh", "exchanges a refresh token (its own credential, rotated)"),
    ("GET", r"/api/registration/auth/jwks", "public keys that verify tokens; public by design"),
    ("POST", r"/api/print/cloud-film/verify", "patients open a share link: share token + identity check"),
    ("GET", r"/api/print/cloud-film/films/\{film_id\}\.png", "patients' shared film: needs the X-Share-Grant"),
    ("POST", r"/api/print/kiosk/(lookup|collected)", "self-service kiosk: a registered device's key + a slip token"),
    ("GET", r"/api/print/kiosk/films/\{film_id\}\.png", "self-service kiosk: device key (X-Kiosk-Key) + slip (X-Slip)"),
    ("GET", r"/api/scheduling/appointments/\{appointment_id\}/receipt\.html",
     "a printed slip opened from a slip link: a random token for this one appointment, 10 minutes, audited"),
    ("GET", r"/ui/print/(review|cloud-film)", "static page shell; its data comes through the guarded API"),
    ("GET", r"/ui/queue/screens/\{screen_id\}", "hall screen shell; data only over the screen-token WebSocket"),
    ("GET", r"/ui/queue/terminal", "static terminal shell; its data comes through the guarded API"),
    ("POST", r"/api/patient/auth/(code|session)",
     "patients sign in: a phone and its one-time SMS code, limited per phone and per address, audited"),
    ("DELETE", r"/api/patient/auth/session", "a patient signs out: their own patient session token"),
    ("GET", r"/api/patient/reports/\{report_id\}/verify",
     "a report copy's verification QR: signing facts of a report version, no patient data"),
    ("GET", r"/api/patient/exams(/\{accession_number\}(/report\.pdf)?)?",
     "a patient's own exams: a patient session token (never a staff one), every read audited"),
    ("GET", r"/api/patient/(messages|preferences)", "a patient's own messages and preference: a patient session token"),
    ("PUT", r"/api/patient/preferences", "a patient stops or resumes messages: a patient session token, audited"),
    ("POST", r"/api/patient/exams/\{accession_number\}/shares", "a patient shares their report: their session token"),
    ("GET", r"/api/patient/shares", "a patient's own share links and who opened them: their session token"),
    ("DELETE", r"/api/patient/shares/\{share_id\}", "a patient revokes their share link: their session token"),
    ("POST", r"/api/patient/shared", "whoever holds a patient's share link: its token, valid 1-30 days, logged"),
    ("GET", r"/fhir/R4/metadata", "FHIR CapabilityStatement: what is served and how to authenticate, no data"),
]
# Served but not in the OpenAPI documents: pages and well-known aliases.
HIDDEN_PUBLIC: list[tuple[str, str, str]] = [
    ("GET", r"/ui/[^/]+/?", "static page shell of a service; data through the guarded API"),
    ("GET", r"/ui/critical-values/ack/\{critical_id\}", "static acknowledgement page; data through the guarded API"),
    ("GET", r"/ui/patient/shared", "static page a patient's share link opens; the token in the fragment, posted"),
    ("GET", r"/ui/dashboard/big-screen", "wall screen shell; data only over the screen-token WebSocket"),
    ("GET", r"/ui/dashboard/qc/", "static quality-control page shell; its data comes through the guarded API"),
    ("GET", r"/ui/[^/]+/static/\{name\}", "a service's page scripts and stylesheets (no data)"),
    ("GET", r"/ui/([^/]+/)?common/\{name\}", "the staff pages' shared stylesheet, shell script and icon"),
    ("GET", r"/(ui/?)?", "the staff entry (registration carries it on its own): sign-in and home page shell"),
    ("GET", r"/ui/admin", "redirect to the administration page shell"),
    ("GET", r"/favicon\.ico", "the icon"),
    ("GET", r"/api/registration/\.well-known/jwks\.json", "the same public keys at their well-known address"),
]
# Each service has many guarded routes; a sweep that finds fewer is not reading the documents right.
MIN_GUARDED = {"critical_values": 25, "dashboard": 8, "print_scp": 10, "queue_calling": 20, "registration": 25,
               "reporting": 35, "scheduling": 35, "worklist": 7}


def _public(table: list[tuple[str, str, str]], method: str, path: str) -> str | None:
    return next((why for m, pattern, why in table if m == method and re.fullmatch(pattern, path)), None)


def _refusal(r: httpx.Response, status: int, what: str, *, fhir: bool = False) -> str | None:
    """What is wrong with a refusal: a problem document, or under the FHIR base an OperationOutcome."""
    if r.status_code != status:
        return f"{what}: {r.status_code} {r.text[:200]}"
    expected = "application/fhir+json" if fhir else "application/problem+json"
    if not r.headers.get("content-type", "").startswith(expected):
        return f"{what}: {status} but content-type {r.headers.get('content-type')}"
    if fhir and r.json().get("resourceType") != "OperationOutcome":
        return f"{what}: {status} but no OperationOutcome"
    if status == 401 and not r.headers.get("www-authenticate", "").startswith("Bearer"):
        return f"{what}: 401 without WWW-Authenticate: Bearer"
    return None


async def _sweep(client: httpx.AsyncClient, op: Operation, admitted: frozenset[str],
                 tokens: dict[str, str]) -> list[str]:
    """The four kinds of unauthorised call on one route; what went wrong, if anything."""
    body = {"json": {}} if "application/json" in op.body_types else {}
    calls: list[tuple[str, str | None, int]] = [("no token", None, 401), ("expired token", tokens["expired"], 401),
                                                ("token without roles", tokens["none"], 403)]
    calls += [(f"role {role}", tokens[role], 403) for role in ROLES if role not in admitted]
    problems = []
    for what, token, status in calls:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = await send(client, op.method, op.url(), headers=headers, **body)
        problem = _refusal(r, status, what, fhir=op.path.startswith("/fhir/R4/"))
        if problem:
            problems.append(f"{op}: {problem}")
    return problems


async def test_every_guarded_route_refuses_missing_expired_and_wrong_role_tokens(sandbox: Sandbox) -> None:
    operations = await sandbox.operations()
    tokens = {role: sandbox.token(role) for role in ROLES}
    tokens["none"] = sandbox.token()
    tokens["expired"] = sandbox.token(*ROLES, ttl_seconds=-120)
    guarded: Counter[str] = Counter()
    problems: list[str] = []
    jobs = []
    for service, ops in operations.items():
        declared = declared_roles(sandbox.apps[service])
        for op in ops:
            admitted = declared.get(op.key)
            if admitted is None:
                if not _public(PUBLIC, op.method, op.path):
                    problems.append(f"{op}: no require_roles guard and not on the PUBLIC list")
                continue
            if not op.secured:
                problems.append(f"{op}: guarded but its OpenAPI declares no security requirement")
            assert admitted and admitted <= set(ROLES), (str(op), admitted)
            guarded[service] += 1
            jobs.append((op, admitted))

    gate = asyncio.Semaphore(4)

    async def run(op: Operation, admitted: frozenset[str]) -> list[str]:
        async with gate:
            return await _sweep(client, op, admitted, tokens)

    async with httpx.AsyncClient(base_url=sandbox.url, timeout=60) as client:
        for found in await asyncio.gather(*(run(op, admitted) for op, admitted in jobs)):
            problems += found
    print("\nguarded routes swept per service:", dict(sorted(guarded.items())), "total", sum(guarded.values()))
    assert not problems, "\n".join(problems)
    for service, minimum in MIN_GUARDED.items():
        assert guarded[service] >= minimum, (service, guarded[service])


async def test_public_routes_are_exactly_the_allow_list(sandbox: Sandbox) -> None:
    """No stale entry: each PUBLIC pattern names routes that exist and really are unguarded."""
    operations = await sandbox.operations()
    unguarded = []
    for service, ops in operations.items():
        declared = declared_roles(sandbox.apps[service])
        unguarded += [(op.method, op.path) for op in ops if declared.get(op.key) is None]
    for method, pattern, _why in PUBLIC:
        assert any(m == method and re.fullmatch(pattern, p) for m, p in unguarded), f"stale PUBLIC entry {pattern}"
    print(f"\npublic routes on purpose: {len(unguarded)}")


async def test_routes_missing_from_openapi_are_guarded_or_public_on_purpose(sandbox: Sandbox) -> None:
    problems = []
    for service, ops in (await sandbox.operations()).items():
        documented = {op.key for op in ops}
        for (method, path), roles in declared_roles(sandbox.apps[service]).items():
            if (method, path) in documented or method == "HEAD" or roles is not None:
                continue
            if not _public(HIDDEN_PUBLIC, method, path):
                problems.append(f"{service}: {method} {path} is unguarded and hidden from the OpenAPI document")
    assert not problems, "\n".join(problems)


async def test_public_routes_keep_their_own_checks(sandbox: Sandbox) -> None:
    film = plausible("film_id", {"format": "uuid"})
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=30) as client:
        r = await client.post("/api/registration/auth/login", json={"username": "nobody-sec", "password": "x" * 12,
                                                                    "totp": "000000"})
        assert r.status_code == 401, r.text
        r = await client.post("/api/registration/auth/refresh", json={"refresh_token": "forged.token"})
        assert r.status_code == 401, r.text
        r = await client.get("/api/registration/auth/jwks")
        assert r.status_code == 200 and all("d" not in k for k in r.json()["keys"]), r.text  # never a private part
        r = await client.post("/api/print/cloud-film/verify", json={"token": "x" * 32, "answer": "1234"})
        assert r.status_code == 404, r.text
        r = await client.get(f"/api/print/cloud-film/films/{film}.png")
        assert r.status_code == 401, r.text
        r = await client.get(f"/api/print/cloud-film/films/{film}.png", headers={"X-Share-Grant": "forged"})
        assert r.status_code == 401, r.text
        for key in (None, "wrong-key"):
            headers = {"X-Kiosk-Key": key} if key else {}
            r = await client.post("/api/print/kiosk/lookup", json={"slip": "SEC0000001"}, headers=headers)
            assert r.status_code == 401, r.text
            r = await client.post("/api/print/kiosk/collected", json={"slip": "SEC0000001", "film_ids": [film]},
                                  headers=headers)
            assert r.status_code == 401, r.text
            r = await client.get(f"/api/print/kiosk/films/{film}.png", headers={**headers, "X-Slip": "SEC0000001"})
            assert r.status_code == 401, r.text
        device = f"sec-{uuid.uuid4().hex[:8]}"
        r = await client.post("/api/print/admin/kiosks", json={"id": device, "name": "security"},
                              headers=sandbox.headers("it-ops"))
        assert r.status_code == 201, r.text
        r = await client.post("/api/print/kiosk/lookup", json={"slip": "SEC0000001"},
                              headers={"X-Kiosk-Key": r.json()["key"]})
        assert r.status_code == 404, r.text  # the right key gets in; nothing printed for that slip


@pytest.mark.parametrize("token", [None, "wrong-token"])
async def test_screen_websocket_refuses_without_the_screen_token(sandbox: Sandbox, token: str | None) -> None:
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=30) as client:
        admin = sandbox.headers("admin")
        for path, body in (("/api/queue/queues/sec-q", {"name": "Security", "ticket_prefix": "S"}),
                           ("/api/queue/rooms/sec-room", {"name": "Security room", "queue_ids": ["sec-q"]}),
                           ("/api/queue/screens/sec-hall", {"kind": "hall", "room_ids": ["sec-room"]})):
            r = await client.put(path, json=body, headers=admin)
            assert r.status_code in (200, 201), r.text
    url = sandbox.url.replace("http://", "ws://") + "/ui/queue/screens/sec-hall/ws"
    if token:
        url += f"?token={token}"
    with pytest.raises((ConnectionClosed, InvalidStatus)) as refused:
        async with ws_connect(url, open_timeout=10) as ws:
            await asyncio.wait_for(ws.recv(), 10)
    if isinstance(refused.value, InvalidStatus):  # closed before the handshake completed: HTTP 403
        assert refused.value.response.status_code == 403
    else:
        assert refused.value.rcvd is not None and refused.value.rcvd.code == 4403
