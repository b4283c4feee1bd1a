"""Prometheus metrics of the event bus, registered on the service's registry (its /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from imaging_common.observability import registered


class EventMetrics:
    """Counters labelled by service and event type; one instance per EventBus."""

    def __init__(self, service: str, registry: CollectorRegistry | None) -> None:
        self.service = service
        self.outbox_backlog = registered(
            Gauge, "events_outbox_backlog", "Outbox rows not yet confirmed by the broker", ["service"], registry
        )
        self.published = registered(
            Counter, "events_published", "Events published with a broker confirm", ["service", "type"], registry
        )
        self.consumed = registered(
            Counter, "events_consumed", "Events handled (outcome: applied, duplicate, ignored)",
            ["service", "type", "outcome"], registry,
        )
        self.retried = registered(
            Counter, "events_retried", "Failed events sent to the retry queue", ["service", "type"], registry
        )
        self.dead_lettered = registered(
            Counter, "events_dead_lettered", "Events sent to the dead-letter queue", ["service", "type", "kind"],
            registry,
        )
        self.queue_depth = registered(
            Gauge, "events_queue_depth",
            "Messages ready in the service's queues (queue: main, retry, dlq), read when /metrics is scraped",
            ["service", "queue"], registry,
        )
