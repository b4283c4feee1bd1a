"""Prometheus metrics of the event bus, registered on the service's registry (its /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class EventMetrics:
    """Counters labelled by service and event type; one instance per EventBus."""

    def __init__(self, service: str, registry: CollectorRegistry | None) -> None:
        registry = registry if registry is not None else CollectorRegistry()  # unexported when none given
        self.service = service
        self.outbox_backlog = Gauge(
            "events_outbox_backlog", "Outbox rows not yet confirmed by the broker", ["service"], registry=registry
        )
        self.published = Counter(
            "events_published_total", "Events published with a broker confirm", ["service", "type"],
            registry=registry,
        )
        self.consumed = Counter(
            "events_consumed_total", "Events handled (outcome: applied, duplicate, ignored)",
            ["service", "type", "outcome"], registry=registry,
        )
        self.retried = Counter(
            "events_retried_total", "Failed events sent to the retry queue", ["service", "type"], registry=registry
        )
        self.dead_lettered = Counter(
            "events_dead_lettered_total", "Events sent to the dead-letter queue", ["service", "type", "kind"],
            registry=registry,
        )
