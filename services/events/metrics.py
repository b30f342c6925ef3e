"""The events service's Prometheus metrics, registered on the registry `main` creates."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class EventMetrics:
    """Counters of accepted and duplicate events and recorded status changes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter(
            "avisa_events_accepted", "Events accepted and published", registry=registry
        )
        self.duplicates = Counter(
            "avisa_events_duplicates", "Events resent with the same payload", registry=registry
        )
        self.statuses = Counter(
            "avisa_events_statuses_recorded",
            "Notification status changes recorded",
            registry=registry,
        )
