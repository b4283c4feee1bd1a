"""Moving an installation's event queues from one type to the other (classic -> quorum) losing nothing.

RabbitMQ cannot turn a classic queue into a quorum one: a declaration with other arguments is refused
(PRECONDITION_FAILED). So each type has queues of its own names (`topology.ServiceQueues`), and
every bus, once connected and its own type's queues declared and bound, sweeps the other type's:

  1. the old main queue is unbound from the exchange: new events reach only the new queue;
  2. messages are moved one by one, each published to the new queue with a broker confirm before
     the old copy is acknowledged: old retry -> new main (retried now rather than after the rest of
     its delay), old main -> new main, old DLQ -> new DLQ. Headers (retry count, error) go along;
  3. an old queue is deleted only when empty and without consumers (`if_empty`, `if_unused`): during a
     rolling upgrade the previous version's pods still consume the old queue and finish what they
     hold; its retry queue stays while they do, since their failed messages still go through it.

A crash between a publish and its ack leaves a copy in both queues: the message is delivered twice,
which the consumers' inbox turns into one application. The sweep runs once a bus is connected and then
every `SWEEP_EVERY` seconds, so queues an older pod declares again later are drained as well; what it
finds (moved, deleted, kept and why) is logged. By hand:

    python -m imaging_common.events.queue_migration   # AMQP_URL, IMAGING_NAMESPACE, IMAGING_EVENT_QUEUE_TYPE
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from dataclasses import dataclass, field

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractQueue

from imaging_common.events.consumer import copy_message
from imaging_common.events.topology import (
    QueueType,
    Role,
    ServiceQueues,
    exchange_name,
    services,
    subscriptions,
)

log = logging.getLogger(__name__)

SWEEP_EVERY = 300.0  # seconds between sweeps of a connected bus
MOVE_TIMEOUT = 10.0  # seconds for one confirm


@dataclass
class MigrationReport:
    moved: dict[str, int] = field(default_factory=dict)  # "old -> new": messages
    deleted: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # old queue still there: why

    @property
    def done(self) -> bool:
        """No queue of the other type is left."""
        return not self.kept


def other(queue_type: QueueType) -> QueueType:
    return "classic" if queue_type == "quorum" else "quorum"


class _Channels:
    """A plain channel, opened again after the broker closed it for a failed passive declare or delete."""

    def __init__(self, connection: AbstractConnection) -> None:
        self.connection = connection
        self._channel: AbstractChannel | None = None

    async def get(self) -> AbstractChannel:
        if self._channel is None or self._channel.is_closed:
            self._channel = await self.connection.channel(publisher_confirms=True)
        return self._channel

    async def passive(self, name: str) -> AbstractQueue | None:
        try:
            return await (await self.get()).declare_queue(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return None


async def migrate_queues(amqp_url: str, namespace: str, queue_type: QueueType) -> MigrationReport:
    """Move every service's queues of the other type into those of `queue_type` (declared and bound
    already by `declare_topology`); see the module's docstring."""
    report = MigrationReport()
    connection = await aio_pika.connect(amqp_url, timeout=5)
    try:
        channels = _Channels(connection)
        for service in services():
            await _migrate_service(channels, namespace, service, queue_type, report)
    finally:
        # bounded: closing after a cancelled channel call can wait for an answer that never comes
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(connection.close()), 5)
    return report


async def _migrate_service(
    channels: _Channels, namespace: str, service: str, queue_type: QueueType, report: MigrationReport
) -> None:
    new, old = ServiceQueues(namespace, service, queue_type), ServiceQueues(namespace, service, other(queue_type))
    roles: tuple[Role, ...] = ("main", "retry", "dlq")
    found = {role for role in roles if await channels.passive(old.name(role)) is not None}
    if not found:
        return
    if "main" in found and (main := await channels.passive(old.main)) is not None:
        for event_type in subscriptions()[service]:
            await main.unbind(exchange_name(namespace), routing_key=event_type)
    moves: tuple[tuple[Role, str], ...] = (("retry", new.main), ("main", new.main), ("dlq", new.dlq))
    for role, target in moves:
        if role in found:
            await _move(channels, old.name(role), target, report)
    # The old main queue first: its retry queue must outlive the consumers that may still send to it.
    for role in roles:
        if role not in found:
            continue
        name = old.name(role)
        if role == "retry" and await channels.passive(old.main) is not None:
            report.kept[name] = f"{old.main} is still there"
        else:
            await _delete_if_drained(channels, name, report, checked_by_broker=old.queue_type == "classic")
    for name, why in report.kept.items():
        if name in (old.main, old.retry, old.dlq):
            log.warning("queue migration: %s kept (%s); moved again at the next sweep", name, why)


async def _move(channels: _Channels, source: str, target: str, report: MigrationReport) -> None:
    queue = await channels.passive(source)
    if queue is None:  # deleted meanwhile by another replica's sweep
        return
    channel = await channels.get()  # the one the passive declare just succeeded on
    moved = 0
    while (message := await queue.get(no_ack=False, fail=False)) is not None:
        # mandatory: a target that does not exist is an error, not a silent drop.
        await channel.default_exchange.publish(copy_message(message, {}), routing_key=target, mandatory=True,
                                               timeout=MOVE_TIMEOUT)
        await message.ack()
        moved += 1
    if moved:
        report.moved[f"{source} -> {target}"] = report.moved.get(f"{source} -> {target}", 0) + moved
        log.info("queue migration: moved %d messages from %s to %s", moved, source, target)


async def _delete_if_drained(
    channels: _Channels, name: str, report: MigrationReport, *, checked_by_broker: bool
) -> None:
    """Delete an old queue that is empty and unused. A classic queue is deleted with if_empty and
    if_unused, so the broker checks both at the moment of deletion; quorum queues refuse those flags
    (NOT_IMPLEMENTED, closing the connection), so an old quorum queue (going back to classic, a
    development setting) is deleted after the same checks made by a passive declare just before."""
    queue = await channels.passive(name)
    if queue is None:
        return
    result = queue.declaration_result
    if result.consumer_count:
        report.kept[name] = f"{result.consumer_count} consumer(s), an earlier version's pods"
        return
    if not checked_by_broker and result.message_count:
        report.kept[name] = f"{result.message_count} message(s) arrived meanwhile"
        return
    try:
        if checked_by_broker:
            await (await channels.get()).queue_delete(name, if_unused=True, if_empty=True)
        else:
            await (await channels.get()).queue_delete(name)
    except aiormq.exceptions.ChannelPreconditionFailed:  # a message or a consumer arrived meanwhile
        report.kept[name] = "not empty or in use at deletion"
        return
    report.deleted.append(name)
    log.info("queue migration: deleted %s (empty, unused)", name)


async def sweep(amqp_url: str, namespace: str, queue_type: QueueType) -> MigrationReport | None:
    """`migrate_queues`, never raising (a bus's background task): None when it failed, logged."""
    try:
        return await migrate_queues(amqp_url, namespace, queue_type)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("queue migration to %s queues failed (%s: %s); tried again at the next sweep",
                    queue_type, type(exc).__name__, exc)
        return None


def main() -> int:
    from imaging_common.config import CommonSettings
    from imaging_common.events.topology import declare_topology

    settings = CommonSettings()

    async def run() -> MigrationReport:
        connection = await aio_pika.connect(settings.amqp_url, timeout=5)
        try:
            await declare_topology(await connection.channel(), settings.namespace, settings.event_queue_type)
        finally:
            with contextlib.suppress(Exception):
                await connection.close()
        return await migrate_queues(settings.amqp_url, settings.namespace, settings.event_queue_type)

    report = asyncio.run(run())
    for route, count in report.moved.items():
        print(f"moved {count}: {route}")
    for name in report.deleted:
        print(f"deleted {name}")
    for name, why in report.kept.items():
        print(f"kept {name}: {why}")
    print("done" if report.done else "not done: run again once the earlier version's pods are gone")
    return 0 if report.done else 1


if __name__ == "__main__":
    sys.exit(main())
