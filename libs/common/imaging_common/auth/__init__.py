"""Staff authentication and authorization. STUB: interface only, being written."""

from __future__ import annotations

from typing import Any


class TokenVerifier:
    @classmethod
    async def from_settings(cls, settings: Any, redis: Any) -> "TokenVerifier":
        return cls()
