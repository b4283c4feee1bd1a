"""Problem documents: a stable code on every one, Chinese title and detail unless the client prefers English."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from imaging_common.errors import Conflict, NotFound, Refusal
from imaging_common.problem_texts import Texts
from imaging_common.problems import install_problem_handlers, preferred_language
from pydantic import BaseModel


class Body(BaseModel):
    n: int


class BookingRefused(Refusal):
    status = 422
    title = "Booking refused"


class RoomMissing(NotFound):
    code = "room-missing"


# A service's own texts (as its adapters/problem_texts.toml holds them), tried before the library's.
SERVICE_TEXTS = Texts([
    (r"invalid username, password or TOTP code", "login-failed", "用户名、密码或动态验证码错误"),
    (r"no room (\S+)", "room-not-found", "没有检查室 {0}"),
    (r"identifier refused: (.+)", "identifier-refused", "证件号不被接受：{0}"),
], titles={"Booking refused": "预约未成功"})


def make_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app, SERVICE_TEXTS)

    @app.get("/login-failed")
    async def login_failed() -> None:
        raise HTTPException(401, "invalid username, password or TOTP code")

    @app.get("/roles")
    async def roles() -> None:
        raise HTTPException(403, "requires one of the roles: clerk, admin")

    @app.get("/room")
    async def room() -> None:
        raise RoomMissing("no room CT-9")

    @app.get("/conflict")
    async def conflict() -> None:
        raise Conflict("entry already checked in")

    @app.get("/identifier")
    async def identifier() -> None:
        raise HTTPException(422, "identifier refused: the region code names no province")

    @app.get("/booking")
    async def booking() -> None:
        raise BookingRefused("no slot satisfies every rule")

    @app.post("/body")
    async def body(b: Body) -> None:
        return None

    return app


@pytest.fixture
async def client():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=make_app()), base_url="http://t") as c:
        yield c


@pytest.mark.parametrize("header, language", [
    ("", "zh"), ("zh-CN,zh;q=0.9,en;q=0.8", "zh"), ("en-US,en;q=0.9", "en"), ("en;q=0.5, zh", "zh"),
    ("fr, en;q=0.8", "en"), ("en;q=0", "zh")])
def test_preferred_language(header: str, language: str) -> None:
    assert preferred_language(header) == language


async def test_chinese_by_default_english_on_request(client: httpx.AsyncClient) -> None:
    r = await client.get("/login-failed")
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json() == {"type": "about:blank", "title": "未登录或登录已失效", "status": 401, "code": "login-failed",
                        "detail": "用户名、密码或动态验证码错误"}
    assert r.headers["content-language"] == "zh" and "Accept-Language" in r.headers["vary"]
    en = await client.get("/login-failed", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert en.json() == {"type": "about:blank", "title": "Unauthorized", "status": 401, "code": "login-failed",
                         "detail": "invalid username, password or TOTP code"}


async def test_codes_from_patterns_classes_and_statuses(client: httpx.AsyncClient) -> None:
    r = (await client.get("/roles")).json()
    assert r["code"] == "role-required" and r["detail"] == "需要以下角色之一：登记员、管理员" and r["title"] == "无权限"
    r = (await client.get("/room")).json()
    assert r["code"] == "room-missing" and r["detail"] == "没有检查室 CT-9" and r["title"] == "未找到"
    # Not in the catalogue: the English wording stays, the code comes from the status.
    r = (await client.get("/conflict")).json()
    assert r["code"] == "conflict" and r["detail"] == "entry already checked in" and r["title"] == "操作冲突"
    r = await client.post("/body", json={"n": "x"})
    assert r.status_code == 422 and r.json()["code"] == "invalid-request"
    assert r.json()["detail"] == "请求内容不符合要求" and r.json()["errors"][0]["loc"] == ["body", "n"]
    r = await client.get("/nowhere")
    assert r.status_code == 404 and r.json()["code"] == "not-found" and r.json()["title"] == "未找到"


async def test_a_services_texts_and_titles_stay_its_own(client: httpx.AsyncClient) -> None:
    # The service's pattern carries a message of the library's (the EMPI's reason), translated too.
    r = (await client.get("/identifier")).json()
    assert r["code"] == "identifier-refused" and r["detail"] == "证件号不被接受：身份证号的地区码不对应任何省份"
    r = (await client.get("/booking")).json()
    assert r["title"] == "预约未成功" and r["code"] == "invalid" and r["detail"] == "no slot satisfies every rule"
    en = (await client.get("/identifier", headers={"Accept-Language": "en"})).json()
    assert en["detail"] == "identifier refused: the region code names no province"
    assert en["code"] == "identifier-refused"
    # Another app (service) without these texts: the library's words only.
    other = FastAPI()
    install_problem_handlers(other)

    @other.get("/room")
    async def room() -> None:
        raise HTTPException(404, "no room CT-9")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url="http://t") as c:
        r = (await c.get("/room")).json()
    assert r["code"] == "not-found" and r["detail"] == "no room CT-9"
