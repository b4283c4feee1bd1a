"""The base of the services' JSON response models (their adapters/schemas.py).

A model names the fields clients read; `extra="allow"` passes on any other column of a row as it is,
so a column added later still reaches clients (a response model otherwise drops what it does not name).
"""

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


def listing(data: list[T], **more: Any) -> dict[str, Any]:
    """The platform's list answer: `{"data": [...], "count": n}` (and any fields given, e.g. the period)."""
    return {**more, "data": data, "count": len(data)}
