"""The dashboard's refusals: the library's (imaging_common.errors), answered as problem+json by the
service factory with the Chinese of adapters/problem_texts.toml."""

from __future__ import annotations

from imaging_common.errors import Conflict, Invalid, NotFound

__all__ = ["Conflict", "Invalid", "NotFound"]
