"""Login (issue 18, 5): one answer for unknown, paused and wrong; throttling per address and per
(name, address) in Redis; nobody can keep a named account locked (progressive delay, unlock by an
admin or by time); in production the first admin's credentials come only from a Secret and are
never printed. Over HTTP, each scenario from loopback addresses of its own (127.0.0.0/8)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from imaging_common.auth import credentials as cred
from imaging_testing import http_server, scratch_database
from registration.app import create_app
from registration.domain import staff
from registration.settings import Settings

from security.conftest import Sandbox
from security.unavailable import Resending, connect

LOGIN = "/api/registration/auth/login"


def _from(box_url: str, address: str) -> httpx.AsyncClient:
    """A client whose connections come from `address` (any 127.x.y.z reaches the server on 127.0.0.1)."""
    return httpx.AsyncClient(base_url=box_url, timeout=60,
                             transport=Resending(httpx.AsyncHTTPTransport(local_address=address)))


async def _staff(box: Sandbox, *roles: str) -> dict[str, str]:
    """A staff account made by an admin over HTTP: username, password, totp_secret, id."""
    async with httpx.AsyncClient(base_url=box.url, timeout=30, transport=Resending()) as api:
        r = await api.post("/api/registration/auth/users", headers=box.headers("admin"),
                           json={"username": f"s{uuid.uuid4().hex[:10]}", "roles": list(roles or ("clerk",))})
        assert r.status_code == 201, r.text
        body = r.json()
    return {"username": body["user"]["username"], "password": body["password"], "totp": body["totp_secret"],
            "id": body["user"]["id"]}


async def _login(api: httpx.AsyncClient, username: str, password: str, secret: str | None = None,
                 offset: int = 0) -> httpx.Response:
    code = cred.totp_code(secret, time.time() + offset) if secret else "123456"
    return await api.post(LOGIN, json={"username": username, "password": password, "totp": code})


def _answer(r: httpx.Response) -> tuple[int, str, dict[str, object]]:
    body = dict(r.json())
    body.pop("retry_after", None)  # the seconds left differ by the time the test took, not by account
    return r.status_code, r.headers["content-type"], body


async def test_one_answer_for_unknown_wrong_disabled_and_paused(sandbox: Sandbox) -> None:
    box = sandbox
    real, disabled = await _staff(box), await _staff(box)
    async with httpx.AsyncClient(base_url=box.url, timeout=30, transport=Resending()) as api:
        r = await api.patch(f"/api/registration/auth/users/{disabled['id']}", headers=box.headers("admin"),
                            json={"active": False})
        assert r.status_code == 200
    ghost = f"ghost{uuid.uuid4().hex[:8]}"
    async with _from(box.url, "127.0.18.1") as api:
        answers = {
            "unknown": await _login(api, ghost, "whatever-password"),
            "wrong password": await _login(api, real["username"], "not-the-password", real["totp"]),
            "wrong code": await _login(api, real["username"], real["password"]),
            "disabled": await _login(api, disabled["username"], disabled["password"], disabled["totp"]),
        }
        seen = {k: _answer(r) for k, r in answers.items()}
        assert seen["unknown"][0] == 401 and len(set(map(repr, seen.values()))) == 1, seen
        # Five failures on a name pause it from this address: the same 429 for a real and an unknown name.
        for name, password in ((real["username"], "bad"), (ghost, "bad")):
            for _ in range(3):  # two failures each already above (ghost: one)
                await _login(api, name, password)
        await _login(api, ghost, "bad")
        paused_real = await _login(api, real["username"], real["password"], real["totp"])
        paused_ghost = await _login(api, ghost, "bad")
        assert paused_real.status_code == 429 and _answer(paused_real) == _answer(paused_ghost)
        assert 0 < int(paused_real.headers["retry-after"]) <= 60
        assert "locked" not in paused_real.text and "exist" not in paused_real.text


async def test_a_named_account_cannot_be_held_locked(sandbox: Sandbox) -> None:
    box = sandbox
    victim = await _staff(box, "admin")
    async with _from(box.url, "127.0.18.2") as attacker:
        for _ in range(5):
            assert (await _login(attacker, victim["username"], "guess")).status_code == 401
        first = await _login(attacker, victim["username"], "guess")
        assert first.status_code == 429
        # Hammering during the pause is not checked and does not extend it.
        for _ in range(10):
            again = await _login(attacker, victim["username"], victim["password"], victim["totp"])
            assert again.status_code == 429
            assert int(again.headers["retry-after"]) <= int(first.headers["retry-after"])
    # The owner, elsewhere, is only slowed down (progressive delay), and gets in.
    async with _from(box.url, "127.0.18.3") as owner:
        started = time.monotonic()
        r = await _login(owner, victim["username"], victim["password"], victim["totp"])
        assert r.status_code == 200, r.text
        assert time.monotonic() - started >= 1  # the name had 5 failures: held back 1 s, not refused
    # An admin lifts the pause at once (the attacker's address would otherwise wait it out).
    async with httpx.AsyncClient(base_url=box.url, timeout=30, transport=Resending()) as api:
        r = await api.post(f"/api/registration/auth/users/{victim['id']}/unlock", headers=box.headers("admin"))
        assert r.status_code == 200 and r.json()["failed_logins"] == 0
        r = await api.post(f"/api/registration/auth/users/{victim['id']}/unlock", headers=box.headers("clerk"))
        assert r.status_code == 403
    async with _from(box.url, "127.0.18.2") as same_address:
        # The owner's code (above) used this step or, if a step boundary passed since, the one before: the next
        # step's code is within the window either way and never used (-30 s met the used one after a boundary).
        r = await _login(same_address, victim["username"], victim["password"], victim["totp"], offset=30)
        assert r.status_code == 200, r.text


async def test_an_address_spraying_names_is_throttled(sandbox: Sandbox) -> None:
    box = sandbox
    user = await _staff(box)
    budget = box.settings.login_address_max_failures
    async with _from(box.url, "127.0.18.4") as sprayer:
        for n in range(budget):  # one guess per name: no name reaches its own limit
            assert (await _login(sprayer, f"spray{n}-{uuid.uuid4().hex[:6]}", "Winter2024!")).status_code == 401
        r = await _login(sprayer, user["username"], user["password"], user["totp"])
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    async with _from(box.url, "127.0.18.5") as colleague:  # another machine is not affected
        assert (await _login(colleague, user["username"], user["password"], user["totp"])).status_code == 200
    conn = await connect(box.database_url)
    try:
        denied = await conn.fetchval(
            "SELECT detail->>'scope' FROM audit.audit_log WHERE action = 'login' AND actor = $1 "
            "AND outcome = 'denied'", user["username"])
    finally:
        await conn.close()
    assert denied == "address"


def _jwt_key(folder: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = folder / "jwt-private.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


async def test_production_first_admin_only_from_a_secret(sandbox: Sandbox, tmp_path: Path,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    box = sandbox
    key = _jwt_key(tmp_path)
    production = {"env": "production", "jwt_private_key_file": key, "namespace": box.settings.namespace,
                  "db_pool_max": 2}
    async with scratch_database(box.database_url, "firstadmin_") as url:
        # No Secret: nothing is generated, nothing printed, the service does not start.
        app = create_app(Settings(database_url=url, **production))
        with pytest.raises(staff.BootstrapRefused, match="IMAGING_ADMIN_PASSWORD_FILE"):
            async with app.router.lifespan_context(app):  # startup (uvicorn would exit with status 3)
                pass
        out = capfd.readouterr()
        assert "TOTP secret:" not in out.err + out.out and "password:" not in out.err + out.out
        # The Secret mounted as files: the admin logs in with exactly those, and they appear nowhere.
        password, secret = f"Pw-{uuid.uuid4().hex}", cred.new_totp_secret()
        (tmp_path / "admin-password").write_text(password + "\n")
        (tmp_path / "admin-totp").write_text(secret)
        settings = Settings(database_url=url, admin_user="chief", admin_password_file=tmp_path / "admin-password",
                            admin_totp_secret_file=tmp_path / "admin-totp", **production)
        async with http_server(create_app(settings)) as base, _from(base, "127.0.18.6") as api:
            r = await _login(api, "chief", password, secret)
            assert r.status_code == 200, r.text
        printed = capfd.readouterr()
        for text in (printed.out, printed.err):
            assert password not in text and secret not in text and "otpauth://" not in text
