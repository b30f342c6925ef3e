"""The rule engine: consume `events.v1`, match rules, publish to `notifications.v1`.

Publishes are collected per batch and sent in `flush()`, which returns only once the broker
acknowledged them; the loop commits offsets after that. A template that fails for an event
becomes a `failed` status change on `status.v1`, so the failure shows in the timeline.

Reminder rules store timers instead (and `cancel_on` rules cancel them) in one database
transaction per event, committed before the batch's offsets; the scheduler sends them when due.
A crash after that commit and before the publish loses nothing: the redelivered event finds
its timers stored and cancelled, and publishes the same `scheduled`/`cancelled` statuses again.

Every event also gets one decision trace on `decisions.v1` (which rules matched and why).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from kafka.consumer.fetcher import ConsumerRecord
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from common.kafka import (
    InvalidMessage,
    MessageRejected,
    OutgoingMessage,
    Producer,
    dead_letter_message,
)
from schemas.decisions import Decision
from schemas.events import CloudEvent
from schemas.notifications import NotificationRequest, Status, StatusChange
from schemas.topics import Topics
from services.rules import flows, reminders, timer_steps
from services.rules.citizens import CitizenDirectory, Preference
from services.rules.decisions import Trace
from services.rules.rendering import Renderer
from services.rules.rulebook import RuleBook, Snapshot

log = logging.getLogger(__name__)

# Below kafka-python's max_request_size and the broker's message.max.bytes (both about 1 MiB)
# with room for the record's key, headers and framing.
MAX_MESSAGE_BYTES = 1_000_000


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


def _failed(request: NotificationRequest, at: datetime, *, detail: str) -> StatusChange:
    """The `failed` status of a request that could not be published."""
    return StatusChange(
        notification_id=request.id,
        event=request.event,
        rule=request.rule.id,
        status=Status.FAILED,
        at=at,
        detail=detail[:1000],
    )


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
        self.timer_changes = Counter(
            "avisa_rules_timer_changes",
            "Reminder timers scheduled or cancelled by events",
            ["status"],
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
        sessions: sessionmaker[Session],
        default_timezone: str,
        citizens: CitizenDirectory | None = None,
        on_scheduled: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self._max_message_bytes = max_message_bytes
        self._record: ConsumerRecord | None = None
        # The queued notification requests, by message, to report if the broker refuses them.
        self._refusals: dict[int, tuple[NotificationRequest, datetime]] = {}
        self._sessions = sessions
        self._default_timezone = default_timezone
        self._citizens = citizens
        self._on_scheduled = on_scheduled
        self._rulebook = rulebook
        self._renderer = renderer
        self._producer = producer
        self._topics = topics
        self._metrics = metrics
        self._clock = clock
        self._pending: dict[tuple[str, ...], OutgoingMessage] = {}

    def handle(self, record: ConsumerRecord) -> None:
        event = parse_event(record.value)
        self._record = record
        try:
            self._decide(event)
        except Exception:
            # The loop retries the whole batch after any failure: drop what it queued so far,
            # it will be queued again.
            self.discard()
            raise

    def discard(self) -> None:
        """Forget what was queued and not yet published (the loop will handle it again)."""
        self._pending.clear()
        self._refusals.clear()

    def _decide(self, event: CloudEvent) -> None:
        self._metrics.events.inc()
        now = self._clock()
        snapshot = self._rulebook.snapshot()
        trace = Trace(event, at=now)
        matches = flows.match(snapshot.rules, event, now=now)
        trace.matches(matches)
        for compiled, error in matches.errors:
            self._metrics.condition_errors.labels(compiled.rule.id).inc()
            log.warning(
                "rule condition failed",
                extra={"rule": compiled.rule.id, "event_id": event.id, "error": error[:300]},
            )
        preference = self._preference(event)
        plans = flows.plan(
            matches.rules,
            snapshot.templates,
            event,
            renderer=self._renderer,
            now=now,
            preference=preference,
        )
        for planned in plans:
            trace.immediate(self._queue(planned, now=now))
        self._timers(event, snapshot, matches.rules, trace, now=now, preference=preference)
        self._queue_decision(trace.decision())

    def _preference(self, event: CloudEvent) -> Preference | None:
        """The citizen's stored zone and locale (citizens.v1), when the event lacks one."""
        citizen = event.data.citizen
        if self._citizens is None or (citizen.timezone and citizen.locale):
            return None
        return self._citizens.get(citizen.id)

    def _reminder_plans(
        self,
        event: CloudEvent,
        snapshot: Snapshot,
        matched: list[flows.CompiledRule],
        trace: Trace,
        *,
        now: datetime,
        preference: Preference | None,
    ) -> list[reminders.ReminderPlan]:
        plans = []
        for compiled in reminders.scheduled_rules(matched):
            template = snapshot.templates.get(compiled.rule.template)
            if template is None:
                planned = flows.missing_template(compiled, event, now=now)
                self._queue(planned, now=now)
                trace.immediate(planned)
                continue
            plan = reminders.plan_reminders(
                compiled,
                template,
                event,
                renderer=self._renderer,
                default_zone=self._default_timezone,
                now=now,
                preference=preference,
            )
            plan = self._storable(plan)
            if plan.failure is not None:
                failure = reminders.failure_status(plan, event, now=now)
                self._queue(flows.Planned(failure=failure), now=now)
                trace.failed(compiled, plan.failure)
            else:
                plans.append(plan)
        return plans

    def _timers(
        self,
        event: CloudEvent,
        snapshot: Snapshot,
        matched: list[flows.CompiledRule],
        trace: Trace,
        *,
        now: datetime,
        preference: Preference | None,
    ) -> None:
        """Cancel what the event cancels, then store the reminders it schedules."""
        cancellers = reminders.cancelling_rules(snapshot.rules, event)
        plans = self._reminder_plans(
            event, snapshot, matched, trace, now=now, preference=preference
        )
        if not cancellers and not plans:
            return
        changes: list[StatusChange] = []
        with self._sessions() as session, session.begin():
            for compiled in cancellers:
                outcome = timer_steps.cancel(compiled, event, now=now, session=session)
                trace.cancelled(compiled, outcome.cancelled)
                changes += outcome.changes
            for plan in plans:
                outcome = timer_steps.schedule(plan, event, now=now, session=session)
                trace.reminders(
                    plan,
                    scheduled=outcome.scheduled,
                    cancelled=outcome.cancelled,
                    reason=outcome.reason,
                    detail=outcome.detail,
                )
                changes += outcome.changes
        for change in changes:
            self._queue_status(change)
        if plans:
            self._on_scheduled()

    def _too_big(self, size: int) -> str | None:
        """Why the broker would refuse a request of `size` bytes (checked before it is queued
        or stored), or None."""
        if size <= self._max_message_bytes:
            return None
        return (
            f"the notification request is {size} bytes, more than the {self._max_message_bytes}"
            " a message may have (AVISA_KAFKA_MAX_MESSAGE_BYTES)"
        )

    def _park(self, reason: str) -> None:
        """Queue the event being handled for the dead-letter topic, with the reason."""
        if self._record is not None:
            message = dead_letter_message(self._record, reason, self._topics.deadletter)
            self._pending[("deadletter", self._record.topic, str(self._record.offset))] = message

    def _storable(self, plan: reminders.ReminderPlan) -> reminders.ReminderPlan:
        """`plan`, or its failure when one of its requests is too big to publish when due."""
        for reminder in plan.ahead:
            reason = self._too_big(len(reminder.request.model_dump_json()))
            if reason is not None:
                self._park(f"rule {plan.compiled.rule.id}: {reason}")
                return reminders.ReminderPlan(plan.compiled, failure=reason)
        return plan

    def _queue_decision(self, decision: Decision) -> None:
        event = decision.event
        self._pending[("decision", event.source, event.id)] = OutgoingMessage(
            topic=self._topics.decisions,
            key=event.subject,
            value=decision.model_dump_json().encode(),
        )

    def _queue_status(self, change: StatusChange) -> None:
        key = ("status", change.notification_id, change.status.value)
        self._pending[key] = OutgoingMessage(
            topic=self._topics.status,
            key=change.notification_id,
            value=change.model_dump_json().encode(),
        )
        self._metrics.timer_changes.labels(change.status.value).inc()

    def _queue(self, planned: flows.Planned, *, now: datetime) -> flows.Planned:
        """Queue what a rule planned; returns it, or the failure it became (a request too big
        to publish fails its rule and parks its event on the dead-letter topic)."""
        if planned.request is not None:
            request = planned.request
            message = OutgoingMessage(
                topic=self._topics.notifications,
                key=request.citizen.id,
                value=request.model_dump_json().encode(),
            )
            reason = self._too_big(len(message.value) + len(request.citizen.id))
            if reason is None:
                self._pending[("request", request.id)] = message
                self._refusals[id(message)] = (request, self._arrival())
                self._metrics.notifications.labels(request.rule.id).inc()
            else:
                self._park(f"rule {request.rule.id}: {reason}")
                planned = flows.Planned(failure=_failed(request, now, detail=reason))
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
        return planned

    def _arrival(self) -> datetime:
        """When the record being handled reached the broker: the same on every attempt, so a
        refusal reported by the batch and again when the loop isolates its record is recorded
        once in the timeline."""
        if self._record is None or self._record.timestamp is None or self._record.timestamp < 0:
            return self._clock()
        return datetime.fromtimestamp(self._record.timestamp / 1000, UTC)

    def flush(self) -> None:
        """Publish what the batch decided; returns once the broker acknowledged all of it."""
        messages = list(self._pending.values())
        refusals, self._refusals = self._refusals, {}
        self._pending.clear()
        if not messages:
            return
        try:
            self._producer.publish(messages)
        except MessageRejected as error:
            # The others were acknowledged; the refused requests show as failed in their
            # timelines, and the loop parks their event on the dead-letter topic.
            failures = [
                _failed(*refusals[id(message)], detail=reason)
                for message, reason in error.rejected
                if id(message) in refusals
            ]
            if failures:
                self._producer.publish(
                    [
                        OutgoingMessage(
                            topic=self._topics.status,
                            key=f.notification_id,
                            value=f.model_dump_json().encode(),
                        )
                        for f in failures
                    ]
                )
            raise
