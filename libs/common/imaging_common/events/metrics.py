"""Prometheus metrics of the event bus, registered on the service's registry (its /metrics)."""

from __future__ import annotations

from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge

M = TypeVar("M", Counter, Gauge)


def _metric(kind: type[M], name: str, doc: str, labels: list[str], registry: CollectorRegistry) -> M:
    """Register a metric, or reuse it when this registry already has it (an app started twice)."""
    existing: Any = getattr(registry, "_names_to_collectors", {}).get(name)
    if isinstance(existing, kind):
        return existing
    return kind(name, doc, labels, registry=registry)


class EventMetrics:
    """Counters labelled by service and event type; one instance per EventBus."""

    def __init__(self, service: str, registry: CollectorRegistry | None) -> None:
        registry = registry if registry is not None else CollectorRegistry()  # unexported when none given
        self.service = service
        self.outbox_backlog = _metric(
            Gauge, "events_outbox_backlog", "Outbox rows not yet confirmed by the broker", ["service"], registry
        )
        self.published = _metric(
            Counter, "events_published", "Events published with a broker confirm", ["service", "type"], registry
        )
        self.consumed = _metric(
            Counter, "events_consumed", "Events handled (outcome: applied, duplicate, ignored)",
            ["service", "type", "outcome"], registry,
        )
        self.retried = _metric(
            Counter, "events_retried", "Failed events sent to the retry queue", ["service", "type"], registry
        )
        self.dead_lettered = _metric(
            Counter, "events_dead_lettered", "Events sent to the dead-letter queue", ["service", "type", "kind"],
            registry,
        )
