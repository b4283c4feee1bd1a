"""RabbitMQ topology: one topic exchange, and per consuming service a queue, a retry queue and a DLQ.

Names are prefixed with the namespace (IMAGING_NAMESPACE, "imaging" by default):
  <ns>.events            topic exchange; routing key = event type
  <ns>.<service>         the service's queue, bound to the types in SUBSCRIPTIONS
  <ns>.<service>.retry   holds a failed message for a delay, then dead-letters it back to the queue
  <ns>.<service>.dlq     messages that failed every retry, kept until replayed or purged
Every publisher declares every queue below, so an event is never lost because its consumer has
not started yet (on Kubernetes, services start in any order).
"""

from __future__ import annotations

# Which event types each service consumes. A service's handlers must be a subset (checked at start).
SUBSCRIPTIONS: dict[str, tuple[str, ...]] = {
    "registration": (),
    "scheduling": ("order.created", "order.cancelled", "patient.updated", "patient.merged", "patient.arrived"),
    "worklist": (
        "order.created", "order.cancelled", "appointment.booked", "appointment.rescheduled",
        "appointment.cancelled", "patient.updated", "patient.merged", "patient.arrived",
    ),
    "queue_calling": (
        "order.created", "order.cancelled", "appointment.booked", "appointment.rescheduled",
        "appointment.cancelled", "patient.updated", "exam.started", "exam.completed",
    ),
    "print_scp": (
        "order.created", "order.cancelled", "appointment.booked", "patient.updated", "patient.merged",
        "exam.started", "exam.completed",
    ),
    "reporting": ("order.created", "exam.completed", "patient.updated", "patient.merged", "film.matched"),
    "critical_values": ("critical.raised", "order.created", "report.amended"),
}


def exchange_name(namespace: str) -> str:
    return f"{namespace}.events"


def queue_name(namespace: str, service: str) -> str:
    return f"{namespace}.{service}"


def retry_queue_name(namespace: str, service: str) -> str:
    return f"{namespace}.{service}.retry"


def dead_letter_queue_name(namespace: str, service: str) -> str:
    return f"{namespace}.{service}.dlq"
