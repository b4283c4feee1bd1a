"""Helpers of the registration tests (imported by name: conftest puts this folder on sys.path)."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import asyncpg
from imaging_common.empi.identifiers import resident_check_char
from imaging_testing.auth import issue_test_token
from registration.settings import Settings


def rid(region: str | None = None, born: str | None = None, seq: int | None = None) -> str:
    """A valid resident ID number, random unless told (tests share one database)."""
    region = region or random.choice(["110105", "310104", "440106", "510107"])
    born = born or f"{random.randint(1940, 2015)}{random.randint(1, 12):02d}{random.randint(1, 28):02d}"
    seq = random.randint(0, 999) if seq is None else seq
    first = f"{region}{born}{seq:03d}"
    return first + resident_check_char(first)


def uname() -> str:
    """A random Chinese name, rare enough not to meet other tests' patients."""
    given = "霁翀珏璟斐翊琰玥瑾蓁昀骞晟弈琪瑶"
    return random.choice("欧阳司马诸葛上官") + "".join(random.choice(given) for _ in range(2))


def auth(settings: Settings, *roles: str, username: str = "clerk-test") -> dict[str, str]:
    token = issue_test_token(settings, roles=list(roles) or ["clerk"], username=username)
    return {"Authorization": f"Bearer {token}"}


async def events(pool: asyncpg.Pool, event_type: str, subject: str) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT envelope FROM outbox WHERE type = $1 AND envelope->>'subject' = $2 ORDER BY seq",
                            event_type, subject)
    return [json.loads(r["envelope"]) if isinstance(r["envelope"], str) else r["envelope"] for r in rows]


async def wait_published(pool: asyncpg.Pool, event_type: str, subject: str, wait_s: float = 15.0) -> None:
    """The relay stamps published_at only after RabbitMQ confirmed the message."""
    for _ in range(int(wait_s / 0.1)):
        if await pool.fetchval("SELECT published_at IS NOT NULL FROM outbox WHERE type = $1 "
                               "AND envelope->>'subject' = $2 ORDER BY seq DESC LIMIT 1", event_type, subject):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{event_type} for {subject} not published to the broker")
