"""The CloudEvents 1.0 JSON envelope every event travels in (structured content mode).

    {"specversion": "1.0", "id": "…uuid…", "source": "/imaging/registration", "type": "order.created",
     "time": "2026-11-23T08:00:00+00:00", "subject": "ACC123", "datacontenttype": "application/json",
     "correlationid": "…", "data": {…the OrderCreated fields…}}

`correlationid` is a CloudEvents extension attribute carrying the correlation id of the request
(or event) that caused this one, so one patient's path can be followed across services' logs.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from imaging_common.events.types import EVENT_MODELS, EventData
from imaging_common.observability import current_correlation_id

CONTENT_TYPE = "application/cloudevents+json"  # AMQP content_type of a structured-mode message


class EventError(ValueError):
    """Base of the errors raised while reading an event; never worth retrying."""


class MalformedEvent(EventError):
    """The message body is not a CloudEvents 1.0 JSON envelope."""


class UnknownEventType(EventError):
    """The envelope names a type that is not in `types.EVENT_MODELS`."""


class InvalidEventData(EventError):
    """The envelope's data does not validate against its type's model."""


class CloudEvent(BaseModel):
    """One event as it travels on the bus; extension attributes other than ours are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)  # URI-reference of the producer, e.g. "/imaging/registration"
    type: str = Field(min_length=1)  # routing key too, e.g. "order.created"
    time: datetime | None = None
    subject: str | None = None  # what the event is about, e.g. the accession number
    datacontenttype: str = "application/json"
    data: dict[str, Any] | None = None
    correlationid: str | None = None  # extension: correlation id of the cause

    @classmethod
    def from_data(
        cls, model: EventData, *, source: str, subject: str | None = None, correlation_id: str | None = None
    ) -> CloudEvent:
        """Wrap a registered event model; the correlation id defaults to the current one."""
        event_type = event_type_of(model)
        return cls(
            id=str(uuid.uuid4()),
            source=source,
            type=event_type,
            time=datetime.now(UTC),
            subject=subject,
            data=model.model_dump(mode="json"),
            correlationid=correlation_id or current_correlation_id(),
        )

    def to_json(self) -> bytes:
        """The wire form: compact JSON, UTF-8 (names may be Chinese), absent optionals left out."""
        return json.dumps(self.model_dump(mode="json", exclude_none=True), ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, body: bytes | str) -> CloudEvent:
        """Read an envelope from the wire; anything else raises `MalformedEvent`."""
        try:
            raw = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedEvent(f"body is not JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise MalformedEvent(f"body is JSON {type(raw).__name__}, not a CloudEvents object")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
            raise MalformedEvent(f"not a CloudEvents 1.0 envelope: {problems}") from exc


def event_type_of(model: EventData | type[EventData]) -> str:
    """The registered type string of an event model (instance or class), or `UnknownEventType`."""
    cls = model if isinstance(model, type) else type(model)
    event_type = getattr(cls, "type", None)
    if not isinstance(event_type, str) or EVENT_MODELS.get(event_type) is not cls:
        raise UnknownEventType(
            f"{cls.__name__} is not a registered event model (see imaging_common.events.types.EVENT_MODELS)"
        )
    return event_type


def parse_data(event: CloudEvent) -> EventData:
    """The event's data as the typed model of its type (e.g. `OrderCreated`); a handler gets it
    parsed already, as the model its `HANDLERS` entry names (`handlers.parse_as`)."""
    model = EVENT_MODELS.get(event.type)
    if model is None:
        raise UnknownEventType(f"unknown event type {event.type!r} (event {event.id})")
    try:
        return model.model_validate(event.data or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InvalidEventData(f"{event.type} event {event.id} has invalid data: {problems}") from exc
