"""The events service's Prometheus metrics, registered on the registry `main` creates."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class EventMetrics:
    """Counters of events, status changes, rate limiting, callbacks and purges."""

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
        self.rate_limited = Counter(
            "avisa_events_rate_limited", "Requests refused by a key's rate limit", registry=registry
        )
        self.callbacks = Counter(
            "avisa_events_callbacks",
            "Callback attempts by outcome",
            ["outcome"],
            registry=registry,
        )
        self.purged = Counter(
            "avisa_events_payloads_purged",
            "Event payloads purged after the retention period",
            registry=registry,
        )
