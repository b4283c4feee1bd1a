"""Sign-in by SMS code, end to end: the order reaches the portal over RabbitMQ, the code goes out over
SMPP to the test SMSC, the patient signs in with what the SMSC received; codes are single-use,
short-lived and hashed; limits hold per phone and per address; sessions are revocable and are never
staff sessions (nor the reverse)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from imaging_testing.auth import issue_test_token
from imaging_testing.smsc import TestSmsc
from patient_portal.settings import Settings

from .conftest import API, code_in, new_phone, registered, sign_in


async def test_sign_in_with_the_code_the_smsc_received(client: httpx.AsyncClient, smsc: TestSmsc, emit: Any,
                                                       pool: asyncpg.Pool) -> None:
    phone = new_phone()
    order = await registered(emit, pool, phone)
    headers = await sign_in(client, smsc, phone)
    r = await client.get(f"{API}/exams", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    [exam] = r.json()["data"]
    assert exam["accession_number"] == order.accession_number
    assert exam["status"] == "ordered" and exam["patient_name"] == "王小明"
    # The code was Chinese text over UCS-2, with the center's signature; the database keeps no code.
    text = smsc.to(f"86{phone}")[-1]
    assert text.startswith("【影像中心】") and "分钟内有效" in text
    stored = await pool.fetch("SELECT code_hash FROM signin_code WHERE phone = $1", phone)
    assert stored and all(code_in(text) not in row["code_hash"] for row in stored)
    audited = await pool.fetch(
        "SELECT action, outcome FROM audit.audit_log WHERE actor LIKE $1 ORDER BY seq",
        f"patient:{phone[:3]}****{phone[-4:]}%")
    assert [(a["action"], a["outcome"]) for a in audited][:2] == [("signin-code", "success"), ("login", "success")]
    assert ("read", "success") in [(a["action"], a["outcome"]) for a in audited]


async def test_a_code_is_used_once_and_a_wrong_one_counts(client: httpx.AsyncClient, smsc: TestSmsc, emit: Any,
                                                          pool: asyncpg.Pool, settings: Settings) -> None:
    phone = new_phone()
    await registered(emit, pool, phone)
    r = await client.post(f"{API}/auth/code", json={"phone": phone})
    assert r.status_code == 202 and r.json()["sent_to"] == f"{phone[:3]}****{phone[-4:]}"
    code = code_in(await smsc.wait_for(f"86{phone}"))
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    r = await client.post(f"{API}/auth/session", json={"phone": phone, "code": wrong})
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
    assert (await client.post(f"{API}/auth/session", json={"phone": phone, "code": code})).status_code == 200
    again = await client.post(f"{API}/auth/session", json={"phone": phone, "code": code})
    assert again.status_code == 401, "a code signs in once"


async def test_too_many_wrong_codes_void_it_and_an_old_code_expires(client: httpx.AsyncClient, smsc: TestSmsc,
                                                                    emit: Any, pool: asyncpg.Pool,
                                                                    settings: Settings) -> None:
    phone = new_phone()
    await registered(emit, pool, phone)
    await client.post(f"{API}/auth/code", json={"phone": phone})
    code = code_in(await smsc.wait_for(f"86{phone}"))
    wrong = f"{(int(code) + 7) % 10**6:06d}"
    for _ in range(settings.patient_code_attempts):
        await client.post(f"{API}/auth/session", json={"phone": phone, "code": wrong})
    r = await client.post(f"{API}/auth/session", json={"phone": phone, "code": code})
    assert r.status_code == 401, "the right code after too many wrong ones no longer signs in"
    # An expired code (its time moved back, as if five minutes had passed) does not sign in either.
    await pool.execute("DELETE FROM signin_code WHERE phone = $1", phone)
    await smsc_code_after_interval(client, smsc, pool, phone)
    code = code_in(smsc.to(f"86{phone}")[-1])
    await pool.execute("UPDATE signin_code SET expires_at = $2 WHERE phone = $1", phone,
                       datetime.now(UTC) - timedelta(seconds=1))
    assert (await client.post(f"{API}/auth/session", json={"phone": phone, "code": code})).status_code == 401


async def smsc_code_after_interval(client: httpx.AsyncClient, smsc: TestSmsc, pool: asyncpg.Pool,
                                   phone: str) -> None:
    """Ask for a new code once the phone's interval has passed (its Redis key taken away here)."""
    ctx = client._transport.app.state.ctx  # type: ignore[attr-defined]
    await ctx.redis.delete(f"{ctx.settings.namespace}:patient:limit:interval:{phone}")
    before = len(smsc.to(f"86{phone}"))
    assert (await client.post(f"{API}/auth/code", json={"phone": phone})).status_code == 202
    await smsc.wait_for(f"86{phone}", after=before)


async def test_limits_per_phone(client: httpx.AsyncClient, smsc: TestSmsc, emit: Any, pool: asyncpg.Pool) -> None:
    phone = new_phone()
    await registered(emit, pool, phone)
    assert (await client.post(f"{API}/auth/code", json={"phone": phone})).status_code == 202
    r = await client.post(f"{API}/auth/code", json={"phone": phone})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0, "one code per interval"
    assert len(smsc.to(f"86{phone}")) == 1


async def test_an_unknown_phone_gets_the_same_answer_and_no_sms(client: httpx.AsyncClient, smsc: TestSmsc) -> None:
    phone = new_phone()
    r = await client.post(f"{API}/auth/code", json={"phone": phone})
    assert r.status_code == 202 and set(r.json()) == {"sent_to", "valid_seconds", "retry_after_seconds"}
    r = await client.post(f"{API}/auth/session", json={"phone": phone, "code": "000000"})
    assert r.status_code == 401
    assert smsc.to(f"86{phone}") == []
    bad = await client.post(f"{API}/auth/code", json={"phone": "12345"}, headers={"Accept-Language": "zh-CN"})
    assert bad.status_code == 422 and bad.json()["code"]


async def test_sign_out_ends_the_session(client: httpx.AsyncClient, smsc: TestSmsc, emit: Any,
                                         pool: asyncpg.Pool) -> None:
    phone = new_phone()
    await registered(emit, pool, phone)
    headers = await sign_in(client, smsc, phone)
    assert (await client.delete(f"{API}/auth/session", headers=headers)).status_code == 204
    r = await client.get(f"{API}/exams", headers=headers)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")


async def test_patient_and_staff_tokens_never_cross(client: httpx.AsyncClient, smsc: TestSmsc, emit: Any,
                                                    pool: asyncpg.Pool, settings: Settings) -> None:
    phone = new_phone()
    await registered(emit, pool, phone)
    patient = await sign_in(client, smsc, phone)
    staff = {"Authorization": f"Bearer {issue_test_token(settings, roles=['admin'], username='staff')}"}
    assert (await client.get(f"{API}/session", headers=staff)).status_code == 200
    assert (await client.get(f"{API}/session", headers=patient)).status_code == 401, "a patient is no staff member"
    assert (await client.get(f"{API}/admin/dead-letters", headers=patient)).status_code == 401
    assert (await client.get(f"{API}/exams", headers=staff)).status_code == 401, "a staff token is no patient session"
    assert (await client.get(f"{API}/exams")).status_code == 401


async def test_one_patient_never_sees_anothers_exam(client: httpx.AsyncClient, smsc: TestSmsc, emit: Any,
                                                    pool: asyncpg.Pool) -> None:
    mine, theirs = new_phone(), new_phone()
    await registered(emit, pool, mine)
    other = await registered(emit, pool, theirs, name="李四")
    headers = await sign_in(client, smsc, mine)
    r = await client.get(f"{API}/exams/{other.accession_number}", headers=headers)
    assert r.status_code == 404
    assert other.accession_number not in (await client.get(f"{API}/exams", headers=headers)).text


async def test_the_api_is_described_and_the_page_keeps_nothing(client: httpx.AsyncClient) -> None:
    spec = (await client.get(f"{API}/openapi.json")).json()
    assert {"/api/patient/auth/code", "/api/patient/auth/session", "/api/patient/exams",
            "/api/patient/shares", "/api/patient/messages"} <= set(spec["paths"])
    page = await client.get("/ui/patient/")
    assert page.status_code == 200 and "手机号登录" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = (await client.get("/ui/patient/static/patient.js")).text
    assert "localStorage" not in script and "sessionStorage" not in script and "document.cookie" not in script
