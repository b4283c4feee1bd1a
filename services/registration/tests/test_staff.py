"""Staff accounts: admin management over HTTP, the first-admin bootstrap, the CLI, the audit view."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from imaging_common.auth import credentials as cred
from imaging_testing import asgi_client, scratch_database
from imaging_testing.auth import issue_test_token
from registration.app import SERVICE, create_app
from registration.domain import staff
from registration.settings import Settings


@pytest.fixture(scope="module")
async def client(settings_for) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(create_app(settings_for(Settings))) as c:
        yield c


@pytest.fixture(scope="module")
def admin_headers(settings_for) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_test_token(settings_for(Settings), roles=['admin'], username='boss')}"}


async def _login(client: httpx.AsyncClient, username: str, password: str, secret: str) -> httpx.Response:
    return await client.post("/api/registration/auth/login",
                             json={"username": username, "password": password, "totp": cred.totp_code(secret)})


async def test_admin_creates_lists_changes_and_unlocks_users(client, admin_headers, settings_for) -> None:
    name = f"nurse{uuid.uuid4().hex[:6]}"
    r = await client.post("/api/registration/auth/users", headers=admin_headers,
                          json={"username": name, "roles": ["nurse"], "display_name": "王护士"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["totp_uri"].startswith("otpauth://totp/") and len(created["password"]) >= 10
    user_id = created["user"]["id"]
    listed = (await client.get("/api/registration/auth/users", headers=admin_headers)).json()
    assert name in [u["username"] for u in listed["data"]] and listed["count"] == len(listed["data"])

    tokens = (await _login(client, name, created["password"], created["totp_secret"])).json()
    user_headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.get("/api/registration/auth/me", headers=user_headers)).json()["roles"] == ["nurse"]
    # A nurse cannot manage accounts.
    assert (await client.get("/api/registration/auth/users", headers=user_headers)).status_code == 403

    # Changing roles ends the user's sessions (their tokens carry the old roles).
    r = await client.patch(f"/api/registration/auth/users/{user_id}", headers=admin_headers,
                           json={"roles": ["nurse", "clerk"]})
    assert r.status_code == 200 and r.json()["roles"] == ["nurse", "clerk"]
    assert (await client.get("/api/registration/auth/me", headers=user_headers)).status_code == 401

    # Failed logins pause the name from this address (429), then an admin unlocks.
    for _ in range(5):
        await client.post("/api/registration/auth/login", json={"username": name, "password": "x", "totp": "1"})
    assert (await _login(client, name, created["password"], created["totp_secret"])).status_code == 429
    r = await client.patch(f"/api/registration/auth/users/{user_id}", headers=admin_headers, json={"unlock": True})
    assert r.json()["locked_until"] is None and r.json()["failed_logins"] == 0
    ok = await client.post("/api/registration/auth/login", json={
        "username": name, "password": created["password"],
        "totp": cred.totp_code(created["totp_secret"], time.time() - 30)})
    assert ok.status_code == 200, ok.text

    # Deactivated: correct credentials no longer log in.
    await client.patch(f"/api/registration/auth/users/{user_id}", headers=admin_headers, json={"active": False})
    refused = await client.post("/api/registration/auth/login", json={
        "username": name, "password": created["password"],
        "totp": cred.totp_code(created["totp_secret"], time.time() + 30)})
    assert refused.status_code == 401

    # The audit view shows who did what.
    log = (await client.get("/api/registration/audit", headers=admin_headers,
                            params={"entity": "staff_user", "limit": 50})).json()
    mine = [e for e in log["data"] if e["entity_id"] == user_id]
    assert {(e["action"], e["actor"]) for e in mine} >= {("create", "boss"), ("update", "boss"), ("login", name)}
    assert (await client.get("/api/registration/audit", headers=user_headers)).status_code == 401


async def test_bad_account_data_is_a_problem(client, admin_headers) -> None:
    name = f"c{uuid.uuid4().hex[:6]}"
    ok = await client.post("/api/registration/auth/users", headers=admin_headers, json={"username": name,
                                                                                        "roles": ["clerk"]})
    assert ok.status_code == 201
    dup = await client.post("/api/registration/auth/users", headers=admin_headers, json={"username": name,
                                                                                         "roles": ["clerk"]})
    assert dup.status_code == 409
    for body in ({"username": "x" + name, "roles": ["janitor"]}, {"username": "Bad Name!", "roles": ["clerk"]},
                 {"username": "y" + name, "roles": ["clerk"], "password": "short"}, {"username": "z" + name}):
        r = await client.post("/api/registration/auth/users", headers=admin_headers, json=body)
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), body
    assert (await client.patch(f"/api/registration/auth/users/{uuid.uuid4()}", headers=admin_headers,
                               json={"active": True})).status_code == 404
    assert (await client.post("/api/registration/auth/users", json={"username": "q" + name,
                                                                    "roles": ["clerk"]})).status_code == 401
    assert (await client.post("/api/registration/auth/login", json={"username": "a"})).status_code == 422


async def test_bootstrap_admin_from_environment(settings_for, test_env) -> None:
    secret = cred.new_totp_secret()
    async with scratch_database(test_env["DATABASE_URL"]) as url:
        settings = settings_for(Settings, database_url=url, admin_user="chief", admin_password="s3cret-enough!",
                                admin_totp_secret=secret)
        async with asgi_client(create_app(settings)) as client:
            r = await _login(client, "chief", "s3cret-enough!", secret)
            assert r.status_code == 200, r.text
            me = await client.get("/api/registration/auth/me",
                                  headers={"Authorization": f"Bearer {r.json()['access_token']}"})
            assert me.json()["roles"] == ["admin"]
        # A second start finds staff and creates nobody.
        async with asgi_client(create_app(settings)) as client:
            conn = await asyncpg.connect(url)
            assert await conn.fetchval("SELECT count(*) FROM registration.staff_users") == 1
            await conn.close()


async def test_bootstrap_admin_generated_is_printed_once(settings_for, capfd, test_env) -> None:
    async with scratch_database(test_env["DATABASE_URL"]) as url:
        settings = settings_for(Settings, database_url=url)
        async with asgi_client(create_app(settings)) as client:
            printed = capfd.readouterr().err
            password = re.search(r"password:\s+(\S+)", printed)
            secret = re.search(r"TOTP secret:\s+(\S+)", printed)
            assert password and secret and "otpauth://totp/" in printed, printed
            assert (await _login(client, "admin", password.group(1), secret.group(1))).status_code == 200
        async with asgi_client(create_app(settings)):
            assert "TOTP secret" not in capfd.readouterr().err


async def test_bootstrap_is_safe_when_replicas_start_together(settings_for, test_env) -> None:
    async with scratch_database(test_env["DATABASE_URL"]) as url:
        await SERVICE.migrate(url)
        settings = settings_for(Settings, database_url=url)
        conns = [await asyncpg.connect(url) for _ in range(3)]
        try:
            results = await asyncio.gather(*(staff.bootstrap_admin(c, settings) for c in conns))
            assert sum(r is not None for r in results) == 1
            assert await conns[0].fetchval("SELECT count(*) FROM registration.staff_users") == 1
        finally:
            for c in conns:
                await c.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "registration.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=60)


async def test_cli_adds_a_user_who_can_log_in(client) -> None:
    name = f"cli{uuid.uuid4().hex[:6]}"
    added = await asyncio.to_thread(_cli, "users", "add", "--username", name, "--roles", "clerk,nurse",
                                    "--display-name", "李娜")
    assert added.returncode == 0, added.stderr
    password = re.search(r"password:\s+(\S+)", added.stdout)
    secret = re.search(r"TOTP secret:\s+(\S+)", added.stdout)
    assert password and secret and "otpauth://totp/" in added.stdout
    r = await _login(client, name, password.group(1), secret.group(1))
    assert r.status_code == 200, r.text
    listed = await asyncio.to_thread(_cli, "users", "list")
    assert listed.returncode == 0 and re.search(rf"{name}\s+clerk,nurse", listed.stdout)
    bad = await asyncio.to_thread(_cli, "users", "add", "--username", name + "x", "--roles", "janitor")
    assert bad.returncode == 1 and "unknown role" in bad.stderr
