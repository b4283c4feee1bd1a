"""A service runs with the settings it was given, read typed (issue 20 item 3): nothing started here."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from imaging_common.config import CommonSettings
from imaging_common.runner import AfterStartup
from imaging_common.service import ServiceSpec, _with_settings, create_service_app, handler_settings


class Settings(CommonSettings):
    thing_minutes: float = 10.0


SPEC = ServiceSpec(name="settingstest", prefix="settingstest", migrations=Path("."), settings=Settings)


def test_an_app_refuses_settings_of_another_class() -> None:
    with pytest.raises(TypeError, match="settingstest runs with Settings, not CommonSettings"):
        create_service_app(SPEC, CommonSettings())  # type: ignore[arg-type]
    assert create_service_app(SPEC, Settings()).state.settings.thing_minutes == 10.0


def test_a_handler_reads_the_settings_its_app_was_made_with() -> None:
    seen: list[float] = []

    async def on_thing(conn: Any, event: Any) -> None:
        seen.append(handler_settings(Settings).thing_minutes)

    async def run() -> None:
        await _with_settings(on_thing, Settings(thing_minutes=1.5))(None, None)
        await _with_settings(on_thing, Settings(thing_minutes=2.5))(None, None)

    asyncio.run(run())
    assert seen == [1.5, 2.5]
    with pytest.raises(RuntimeError, match="outside an event handler"):
        handler_settings(Settings)  # not made on the side from the environment


def test_process_switches_run_once_after_startup() -> None:
    calls: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "lifespan.startup"
        calls.append("started")
        await send({"type": "lifespan.startup.complete"})

    async def receive() -> dict[str, str]:
        return {"type": "lifespan.startup"}

    async def send(message: Any) -> None:
        calls.append(message["type"])

    asyncio.run(AfterStartup(app, lambda: calls.append("hook"))({"type": "lifespan"}, receive, send))
    assert calls == ["started", "hook", "lifespan.startup.complete"]
