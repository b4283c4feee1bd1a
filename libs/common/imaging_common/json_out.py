"""The base of the services' JSON response models (their adapters/schemas.py), and the list answer.

A model names the fields clients read; `extra="allow"` passes on any other column of a row as it is,
so a column added later still reaches clients (a response model otherwise drops what it does not name).

Datetimes: every aware datetime in a JSON answer is written as Python's `isoformat()` writes it, ISO 8601
with a numeric offset: `2026-12-07T09:30:00+00:00` for the UTC instants PostgreSQL returns (never `Z`),
`+08:00` where a service answers in the center's local time. Pydantic alone would write UTC as `Z`,
so answers built by a model and values a route formats itself would differ; `Out` writes both alike,
in named fields, in passed-on columns and inside their lists and mappings. A naive datetime is written
without an offset, as before.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, SerializationInfo, SerializerFunctionWrapHandler, model_serializer

T = TypeVar("T")


def _offsets(original: Any, dumped: Any) -> Any:
    """`dumped` (pydantic's JSON form of `original`) with each aware datetime written by isoformat()."""
    if isinstance(original, datetime):
        return original.isoformat() if original.tzinfo is not None else dumped
    if isinstance(original, BaseModel):
        return dumped  # written by its own serializer (an Out's is this one)
    if isinstance(original, dict) and isinstance(dumped, dict) and len(original) == len(dumped):
        return {key: _offsets(value, out) for value, (key, out) in zip(original.values(), dumped.items(), strict=True)}
    if isinstance(original, list | tuple) and isinstance(dumped, list) and len(original) == len(dumped):
        return [_offsets(value, out) for value, out in zip(original, dumped, strict=True)]
    return dumped


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")

    # No return annotation: pydantic would document the answer as that type instead of as the model.
    @model_serializer(mode="wrap", when_used="json")
    def _one_offset_form(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo):  # type: ignore[no-untyped-def]
        dumped = handler(self)
        if not isinstance(dumped, dict):
            return dumped
        values: dict[str, Any] = dict(self.__pydantic_extra__ or {})
        for name, field in type(self).model_fields.items():
            values[field.serialization_alias or field.alias or name] = values[name] = getattr(self, name)
        return {key: _offsets(values[key], out) if key in values else out for key, out in dumped.items()}


def listing(data: list[T], **more: Any) -> dict[str, Any]:
    """The platform's list answer: `{"data": [...], "count": n}` (and any fields given, e.g. the period)."""
    return {**more, "data": data, "count": len(data)}
