"""The rule engine: consume `events.v1`, match rules, publish to `notifications.v1`.

Publishes are collected per batch and sent in `flush()`, which returns only once the broker
acknowledged them; the loop commits offsets after that. A template that fails for an event
becomes a `failed` status change on `status.v1`, so the failure shows in the timeline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from common.kafka import InvalidMessage, OutgoingMessage, Producer
from schemas.events import CloudEvent
from schemas.topics import Topics
from services.rules import flows
from services.rules.rendering import Renderer
from services.rules.rulebook import RuleBook

log = logging.getLogger(__name__)


def parse_event(value: bytes | None) -> CloudEvent:
    """The CloudEvent in a record's value; anything else is an InvalidMessage."""
    try:
        return CloudEvent.model_validate_json(value or b"")
    except ValidationError as error:
        first = error.errors()[0]
        if first["type"] == "json_invalid":
            raise InvalidMessage(f"not JSON: {first['msg']}") from None
        where = ".".join(str(part) for part in first["loc"]) or "value"
        raise InvalidMessage(f"not a valid event: {where}: {first['msg']}") from None


class Metrics:
    """The rule engine's counters, registered on the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "avisa_rules_events", "Events the rule engine read", registry=registry
        )
        self.notifications = Counter(
            "avisa_rules_notifications",
            "Notification requests published",
            ["rule"],
            registry=registry,
        )
        self.failures = Counter(
            "avisa_rules_render_failures",
            "Notifications that could not be composed",
            ["rule"],
            registry=registry,
        )
        self.condition_errors = Counter(
            "avisa_rules_condition_errors",
            "Rule conditions that failed for an event",
            ["rule"],
            registry=registry,
        )


class RulesHandler:
    """Turns each event into notification requests; a `Handler` for `ConsumerLoop`."""

    def __init__(
        self,
        *,
        rulebook: RuleBook,
        renderer: Renderer,
        producer: Producer,
        topics: Topics,
        metrics: Metrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._rulebook = rulebook
        self._renderer = renderer
        self._producer = producer
        self._topics = topics
        self._metrics = metrics
        self._clock = clock
        self._pending: dict[tuple[str, str], OutgoingMessage] = {}

    def handle(self, record: ConsumerRecord) -> None:
        event = parse_event(record.value)
        try:
            self._decide(event)
        except Exception:
            # The loop retries the whole batch after any failure: drop what it queued so far,
            # it will be queued again.
            self._pending.clear()
            raise

    def _decide(self, event: CloudEvent) -> None:
        self._metrics.events.inc()
        now = self._clock()
        snapshot = self._rulebook.snapshot()
        matches = flows.match(snapshot.rules, event, now=now)
        for compiled, error in matches.errors:
            self._metrics.condition_errors.labels(compiled.rule.id).inc()
            log.warning(
                "rule condition failed",
                extra={"rule": compiled.rule.id, "event_id": event.id, "error": error[:300]},
            )
        for compiled in matches.rules:
            if compiled.rule.schedule is not None:
                log.debug(
                    "reminder rule skipped: timers are not implemented yet",
                    extra={"rule": compiled.rule.id, "event_id": event.id},
                )
        plans = flows.plan(
            matches.rules, snapshot.templates, event, renderer=self._renderer, now=now
        )
        for planned in plans:
            self._queue(planned)

    def _queue(self, planned: flows.Planned) -> None:
        if planned.request is not None:
            request = planned.request
            self._pending[("request", request.id)] = OutgoingMessage(
                topic=self._topics.notifications,
                key=request.citizen.id,
                value=request.model_dump_json().encode(),
            )
            self._metrics.notifications.labels(request.rule.id).inc()
        if planned.failure is not None:
            failure = planned.failure
            self._pending[("failure", failure.notification_id)] = OutgoingMessage(
                topic=self._topics.status,
                key=failure.notification_id,
                value=failure.model_dump_json().encode(),
            )
            self._metrics.failures.labels(failure.rule or "").inc()
            log.warning(
                "notification could not be composed",
                extra={
                    "notification_id": failure.notification_id,
                    "rule": failure.rule,
                    "event_id": failure.event.id,
                    "error": (failure.detail or "")[:300],
                },
            )

    def flush(self) -> None:
        """Publish what the batch decided; returns once the broker acknowledged all of it."""
        messages = list(self._pending.values())
        self._pending.clear()
        if messages:
            self._producer.publish(messages)
