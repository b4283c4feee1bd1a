"""`make run`'s process on a fresh database: all seven services ready, first admin logs in with TOTP,
its JWT verifies against the published JWKS, and an `alg: none` token is refused everywhere."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pyotp
from imaging_testing import free_port
from imaging_testing.helpers import allinone_process
from jose import jwt

PREFIXES = ["print", "registration", "worklist", "scheduling", "reporting", "critical-values", "queue", "patient"]


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_platform_process_from_empty_database(test_env, tmp_path) -> None:
    dbname = f"imaging_run_{uuid.uuid4().hex[:8]}"
    admin_url = urlunsplit(urlsplit(test_env["DATABASE_URL"])._replace(path="/postgres"))
    http_port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": urlunsplit(urlsplit(test_env["DATABASE_URL"])._replace(path=f"/{dbname}")),
        "IMAGING_DATA_DIR": str(tmp_path),
        "IMAGING_NAMESPACE": f"{test_env['IMAGING_NAMESPACE']}-run",
        "IMAGING_HTTP_PORT": str(http_port),
        "IMAGING_PRINT_PORT": str(free_port()),
        "IMAGING_WORKLIST_PORT": str(free_port()),
        "IMAGING_MLLP_PORT": str(free_port()),
    }
    for key in ("IMAGING_ADMIN_USER", "IMAGING_ADMIN_PASSWORD", "IMAGING_ADMIN_TOTP_SECRET"):
        env.pop(key, None)
    log = tmp_path / "platform.log"
    started = time.monotonic()
    try:
        with allinone_process(env, log, stop=signal.SIGINT, within=20) as proc:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=5) as client:
                ready: set[str] = set()
                while len(ready) < len(PREFIXES) and time.monotonic() - started < 60:
                    assert proc.poll() is None, log.read_text()[-3000:]
                    for prefix in set(PREFIXES) - ready:
                        try:
                            if (await client.get(f"/api/{prefix}/readyz")).status_code == 200:
                                ready.add(prefix)
                        except httpx.TransportError:
                            break
                    await asyncio.sleep(0.5)
                elapsed = time.monotonic() - started
                assert ready == set(PREFIXES), f"not ready after {elapsed:.0f}s: {set(PREFIXES) - ready}"
                print(f"all seven services ready {elapsed:.1f}s after start")

                output = log.read_text()
                password = re.search(r"password:\s+(\S+)", output).group(1)  # type: ignore[union-attr]
                secret = re.search(r"TOTP secret:\s+(\S+)", output).group(1)  # type: ignore[union-attr]
                assert output.count(password) <= 2  # printed once (the banner), never logged elsewhere

                login = await client.post("/api/registration/auth/login", json={
                    "username": "admin", "password": password, "totp": pyotp.TOTP(secret).now()})
                assert login.status_code == 200, login.text
                token = login.json()["access_token"]
                jwks = (await client.get("/api/registration/auth/jwks")).json()
                claims = jwt.decode(token, jwks, algorithms=["RS256"], audience="imaging-platform")
                assert "admin" in claims["roles"]

                header = jwt.get_unverified_header(token)
                unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': header['kid']})}.{_b64(claims)}."
                for prefix in PREFIXES:
                    ok = await client.get(f"/api/{prefix}/session", headers={"authorization": f"Bearer {token}"})
                    assert ok.status_code == 200, (prefix, ok.text)
                    refused = await client.get(f"/api/{prefix}/session",
                                               headers={"authorization": f"Bearer {unsigned}"})
                    assert refused.status_code == 401, (prefix, refused.text)
    finally:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        finally:
            await conn.close()
