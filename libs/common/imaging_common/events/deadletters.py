"""Dead letters: list, replay and purge what a service's consumer gave up on.

A message lands in the service's DLQ (`<ns>.<service>.quorum.dlq`, or `<ns>.<service>.dlq` with
IMAGING_EVENT_QUEUE_TYPE=classic) when its handler failed every retry, or when it was
never a valid event (not JSON, not a CloudEvent, data not matching its model). It stays there,
never dropped, until someone replays it (after fixing the handler or the data) or purges it.

    python -m imaging_common.events.deadletters list   --service worklist
    python -m imaging_common.events.deadletters replay --service worklist [--event-id ID ...]
    python -m imaging_common.events.deadletters purge  --service worklist (--event-id ID ... | --all)

(connection settings from the environment: AMQP_URL, IMAGING_NAMESPACE, IMAGING_EVENT_QUEUE_TYPE). The same operations
over HTTP: `dead_letters_router()`, mounted by a service under /api/<prefix>/admin/dead-letters
for the it-ops and admin roles. Listing does not consume: messages are fetched unacknowledged
and returned to the queue when the channel closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Collection
from dataclasses import asdict, dataclass
from typing import Annotated

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from fastapi import APIRouter, Body, Depends, HTTPException, Request
from pydantic import BaseModel

from imaging_common.events.consumer import SERVICE_HEADER, copy_message, header_int, header_str
from imaging_common.events.envelope import CloudEvent, MalformedEvent
from imaging_common.events.topology import (
    DEAD_LETTERED_AT_HEADER,
    ERROR_HEADER,
    ERROR_KIND_HEADER,
    REPLAYS_HEADER,
    RETRIES_HEADER,
    QueueType,
    ServiceQueues,
    services,
)

MAX_SCAN = 10_000  # messages looked at per call; a DLQ bigger than this needs repeated calls


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered message, as shown to an operator (no event data: it may name patients)."""

    event_id: str | None
    type: str | None
    subject: str | None
    source: str | None
    error: str | None
    error_kind: str | None  # "handler", "malformed", "invalid-data"
    attempts: int  # failed handler attempts (0 for messages that were never valid)
    dead_lettered_at: str | None  # ISO 8601 UTC
    replays: int

    @classmethod
    def of(cls, message: AbstractIncomingMessage) -> DeadLetter:
        headers = message.headers or {}
        event: CloudEvent | None
        try:
            event = CloudEvent.from_json(message.body)
        except MalformedEvent:
            event = None
        return cls(
            event_id=message.message_id or (event.id if event else None),
            type=event.type if event else message.type,
            subject=event.subject if event else None,
            source=event.source if event else None,
            error=header_str(headers.get(ERROR_HEADER)),
            error_kind=header_str(headers.get(ERROR_KIND_HEADER)),
            attempts=header_int(headers.get(RETRIES_HEADER)),
            dead_lettered_at=header_str(headers.get(DEAD_LETTERED_AT_HEADER)),
            replays=header_int(headers.get(REPLAYS_HEADER)),
        )


def _check_service(service: str) -> None:
    if service not in services():
        raise ValueError(f"unknown service {service!r}; services with queues: {', '.join(services())}")


async def _scan(
    channel: AbstractChannel, namespace: str, service: str, queue_type: QueueType = "quorum"
) -> list[AbstractIncomingMessage]:
    """Fetch the DLQ's messages unacknowledged (they return to the queue unless acked)."""
    queue = await ServiceQueues(namespace, service, queue_type).declare(channel, "dlq")
    messages: list[AbstractIncomingMessage] = []
    while len(messages) < MAX_SCAN:
        message = await queue.get(no_ack=False, fail=False, timeout=10)
        if message is None:
            break
        messages.append(message)
    return messages


def _matches(letter: DeadLetter, event_ids: Collection[str] | None) -> bool:
    return event_ids is None or letter.event_id in event_ids


async def list_dead_letters(
    amqp_url: str, namespace: str, service: str, queue_type: QueueType = "quorum"
) -> list[DeadLetter]:
    """The service's dead letters, oldest first; the queue is left as it was."""
    _check_service(service)
    connection = await aio_pika.connect(amqp_url, timeout=5)
    try:
        channel = await connection.channel()
        return [DeadLetter.of(m) for m in await _scan(channel, namespace, service, queue_type)]
    finally:
        await connection.close()  # unacked messages go back to the DLQ


async def replay_dead_letters(
    amqp_url: str, namespace: str, service: str, event_ids: Collection[str] | None = None,
    queue_type: QueueType = "quorum",
) -> list[DeadLetter]:
    """Send dead letters (all, or those with the given event ids) back to the service's queue.

    Each copy starts with a clean retry count; the dead letter is removed only after the broker
    confirmed the copy, so a failure halfway loses nothing (at worst one is replayed twice, which
    the inbox absorbs). Returns what was replayed.
    """
    _check_service(service)
    connection = await aio_pika.connect(amqp_url, timeout=5)
    replayed: list[DeadLetter] = []
    try:
        channel = await connection.channel(publisher_confirms=True)
        queues = ServiceQueues(namespace, service, queue_type)
        await queues.declare(channel, "main")
        for message in await _scan(channel, namespace, service, queue_type):
            letter = DeadLetter.of(message)
            if not _matches(letter, event_ids):
                continue
            copy = copy_message(
                message,
                {RETRIES_HEADER: 0, REPLAYS_HEADER: letter.replays + 1},
                drop=(ERROR_HEADER, ERROR_KIND_HEADER, DEAD_LETTERED_AT_HEADER, SERVICE_HEADER),
            )
            await channel.default_exchange.publish(copy, routing_key=queues.main, mandatory=False)
            await message.ack()
            replayed.append(letter)
        return replayed
    finally:
        await connection.close()


async def purge_dead_letters(
    amqp_url: str, namespace: str, service: str, event_ids: Collection[str] | None = None,
    queue_type: QueueType = "quorum",
) -> list[DeadLetter]:
    """Delete dead letters (all when `event_ids` is None); returns what was deleted."""
    _check_service(service)
    connection = await aio_pika.connect(amqp_url, timeout=5)
    purged: list[DeadLetter] = []
    try:
        channel = await connection.channel()
        for message in await _scan(channel, namespace, service, queue_type):
            letter = DeadLetter.of(message)
            if _matches(letter, event_ids):
                await message.ack()
                purged.append(letter)
        return purged
    finally:
        await connection.close()


# ---- HTTP --------------------------------------------------------------------------------


class Selection(BaseModel):
    """Which dead letters an operation applies to."""

    event_ids: list[str] | None = None  # None: every dead letter
    all: bool = False  # purge only: must be set to purge everything


class DeadLetterOut(BaseModel):
    """A dead letter as an operator sees it (DeadLetter's fields)."""

    event_id: str | None
    type: str | None
    subject: str | None
    source: str | None
    error: str | None
    error_kind: str | None
    attempts: int
    dead_lettered_at: str | None
    replays: int


class DeadLetters(BaseModel):
    data: list[DeadLetterOut]
    count: int


def dead_letters_router(service: str | None = None) -> APIRouter:
    """Routes under `/admin/dead-letters` (relative to /api/<prefix>) for it-ops and admin.

    GET  /admin/dead-letters          -> {"data": [DeadLetter...], "count": n}
    POST /admin/dead-letters/replay   {"event_ids": [...] | null (all)}  -> {"data": [...], "count": n}
    POST /admin/dead-letters/purge    {"event_ids": [...]} or {"all": true} -> {"data": [...], "count": n}
    The DLQ is the app's own service's (request.app.state.ctx.spec.name) unless `service` names one.
    """
    from imaging_common.auth import require_roles  # here: auth imports much that the CLI does not need

    router = APIRouter(prefix="/admin/dead-letters", tags=["dead letters"])
    operator = Depends(require_roles("it-ops", "admin"))

    def where(request: Request) -> tuple[str, str, str]:
        ctx = getattr(request.app.state, "ctx", None)
        if ctx is None:
            raise HTTPException(503, "service is starting")
        name = service or ctx.spec.name
        if name not in services():
            raise HTTPException(404, f"service {name!r} has no event queue")
        return ctx.settings.amqp_url, ctx.settings.namespace, name

    def kind(request: Request) -> QueueType:
        return request.app.state.ctx.settings.event_queue_type  # type: ignore[no-any-return]

    async def answer(request: Request, action: str, operation: str, letters: list[DeadLetter]) -> DeadLetters:
        """Audit the operation (dead letters carry patients' events), then answer {data, count}."""
        from imaging_common import audit

        _, namespace, name = where(request)
        queue_type = kind(request)
        principal = request.state.principal  # set by require_roles
        async with request.app.state.ctx.pool.acquire() as conn:
            await audit.record(
                conn, actor=principal.username, action=action, entity="dead-letter",
                entity_id=ServiceQueues(namespace, name, queue_type).dlq,
                source_ip=request.client.host if request.client else None,
                detail={"operation": operation, "count": len(letters),
                        "event_ids": [d.event_id for d in letters][:100]},
            )
        return DeadLetters(data=[DeadLetterOut(**asdict(d)) for d in letters], count=len(letters))

    @router.get("", summary="List the service's dead-lettered events", dependencies=[operator])
    async def list_(request: Request) -> DeadLetters:
        return await answer(request, "read", "list", await list_dead_letters(*where(request), queue_type=kind(request)))

    @router.post("/replay", summary="Replay dead letters into the service's queue", dependencies=[operator])
    async def replay(request: Request, selection: Annotated[Selection | None, Body()] = None) -> DeadLetters:
        ids = selection.event_ids if selection else None
        return await answer(request, "update", "replay",
                            await replay_dead_letters(*where(request), ids, queue_type=kind(request)))

    @router.post("/purge", summary="Delete dead letters", dependencies=[operator])
    async def purge(request: Request, selection: Selection) -> DeadLetters:
        if selection.event_ids is None and not selection.all:
            raise HTTPException(422, "name the event_ids to purge, or set all=true to purge every dead letter")
        return await answer(request, "delete", "purge",
                            await purge_dead_letters(*where(request), selection.event_ids, queue_type=kind(request)))

    return router


# ---- CLI ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from imaging_common.config import CommonSettings

    parser = argparse.ArgumentParser(
        prog="python -m imaging_common.events.deadletters",
        description="List, replay or purge a service's dead-lettered events (AMQP_URL, IMAGING_NAMESPACE from env).",
    )
    parser.add_argument("command", choices=["list", "replay", "purge"])
    with_queues = services()  # the installed services with event handlers
    parser.add_argument("--service", required=True, help=f"one of: {', '.join(with_queues)}")
    parser.add_argument("--event-id", action="append", dest="event_ids", help="only this event (repeatable)")
    parser.add_argument("--all", action="store_true", help="purge: confirm purging every dead letter")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.service not in with_queues:
        parser.error(f"unknown service {args.service!r}; one of: {', '.join(with_queues)}")
    if args.command == "purge" and not args.event_ids and not args.all:
        parser.error("purge needs --event-id ID (repeatable) or --all")

    settings = CommonSettings()
    target = (settings.amqp_url, settings.namespace, args.service)
    kind = settings.event_queue_type
    if args.command == "list":
        letters = asyncio.run(list_dead_letters(*target, queue_type=kind))
    elif args.command == "replay":
        letters = asyncio.run(replay_dead_letters(*target, args.event_ids, queue_type=kind))
    else:
        letters = asyncio.run(purge_dead_letters(*target, args.event_ids, queue_type=kind))

    if args.json:
        print(json.dumps({"command": args.command, "data": [asdict(d) for d in letters], "count": len(letters)},
                         ensure_ascii=False))
        return 0
    verb = {"list": "dead letters", "replay": "replayed", "purge": "purged"}[args.command]
    print(f"{len(letters)} {verb} ({ServiceQueues(settings.namespace, args.service, kind).dlq})")
    for d in letters:
        print(f"{d.event_id}\t{d.type}\tattempts={d.attempts}\t{d.dead_lettered_at}\t{d.error_kind}: {d.error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
