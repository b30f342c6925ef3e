"""Planning reminders and cancellations for an event (pure; the consumer stores the result).

A rule with a `schedule` makes one notification request per offset, rendered when the event
arrives and stored as a timer until it is due. Its id uses the offset as the `step`, so the same
event always plans the same ids. Each request's `not_after` is the deadline: a date deadline
lasts until the end of that day in the citizen's zone. A reminder due at or after its deadline
(a positive offset, or escalation relative to the event `time`) instead expires `expires_after`
after its due time, or never when the rule has no `expires_after`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from schemas.durations import parse_duration
from schemas.events import CloudEvent
from schemas.notifications import NotificationRequest, RuleRef, StatusChange, notification_id
from schemas.rules import Rule, Schedule, Template
from services.rules import reminder_dates as timing
from services.rules.citizens import Preference, wanted_locale, zone_name
from services.rules.errors import RenderError
from services.rules.flows import (
    CompiledRule,
    event_ref,
    failed,
    out_of_range,
    shift,
    template_variables,
    type_matches,
)
from services.rules.rendering import Renderer

SCHEDULE_STEP = "schedule"


@dataclass(frozen=True, slots=True)
class PlannedReminder:
    """One reminder: the request to send when due, its UTC and local due time, whether its
    time already passed (then it is not stored), and the business-day moves that placed it."""

    request: NotificationRequest
    due: datetime
    local: datetime
    past: bool
    moves: tuple[timing.Move, ...] = ()


@dataclass(frozen=True, slots=True)
class ReminderPlan:
    """What a reminder rule decided for one event, or why it could not decide."""

    compiled: CompiledRule
    reminders: list[PlannedReminder] = field(default_factory=list)
    failure: str | None = None

    @property
    def ahead(self) -> list[PlannedReminder]:
        return [r for r in self.reminders if not r.past]


def citizen_zone(event: CloudEvent, default: str, preference: Preference | None = None) -> ZoneInfo:
    """The zone reminders are computed in: the event's citizen timezone, else the citizen's
    preferred one (citizens.v1, from the notifier), else the default. A preferred zone this
    machine does not know falls back to the default rather than failing the reminders."""
    name = zone_name(event, preference, default)
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):
        if name == event.data.citizen.timezone:
            raise
        return ZoneInfo(default)


def field_value(event: CloudEvent, path: str) -> Any:
    """The value at a dotted path of the event (`time`, `data.expires_on`); KeyError if absent."""
    if path == "time":
        return event.time
    value: Any = {"data": event.data.model_dump(mode="json")}
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(path)
        value = value[part]
    return value


def deadline_of(event: CloudEvent, schedule: Schedule, *, now: datetime) -> date | datetime:
    """The deadline the schedule counts from; ValueError naming the field when it is unusable."""
    if schedule.relative_to == "time":
        return event.time or now
    try:
        return timing.parse_deadline(field_value(event, schedule.relative_to))
    except KeyError:
        raise ValueError(f"the event has no field {schedule.relative_to}") from None
    except ValueError as error:
        raise ValueError(f"{schedule.relative_to}: {error}") from None


def reminder_id(compiled: CompiledRule, event: CloudEvent, step: str) -> str:
    return notification_id(
        rule_id=compiled.rule.id,
        rule_version=compiled.version,
        source=event.source,
        event_id=event.id,
        step=step,
    )


def expiry(rule: Rule, due: datetime, end: datetime) -> datetime | None:
    """A reminder's `not_after`: the deadline, or for reminders due after it `expires_after`."""
    if due < end:
        return end
    if rule.expires_after is None:
        return None
    return shift(due, parse_duration(rule.expires_after))


def plan_reminders(
    compiled: CompiledRule,
    template: Template,
    event: CloudEvent,
    *,
    renderer: Renderer,
    default_zone: str,
    now: datetime,
    preference: Preference | None = None,
) -> ReminderPlan:
    """The reminders a scheduled rule makes for an event (past ones flagged, not dropped);
    `preference` is the citizen's stored zone and locale, used where the event has none."""
    rule, schedule = compiled.rule, compiled.rule.schedule
    assert schedule is not None  # only called for rules with a schedule
    zone = citizen_zone(event, default_zone, preference)
    locale = wanted_locale(event, preference)
    try:
        deadline = deadline_of(event, schedule, now=now)
    except ValueError as error:
        return ReminderPlan(compiled, failure=str(error))
    calendar = timing.business_calendar(schedule.calendar) if schedule.calendar else None
    at = time.fromisoformat(schedule.at) if schedule.at else None
    try:
        end = timing.deadline_end(deadline, zone)
        items = timing.plan_schedule(
            deadline, schedule.offsets, at=at, zone=zone, calendar=calendar, now=now
        )
        expiries = [expiry(rule, item.due, end) for item in items]
    except (OverflowError, ValueError):
        when = f"the reminders {', '.join(schedule.offsets)} of {schedule.relative_to} {deadline}"
        return ReminderPlan(compiled, failure=out_of_range(when))
    reminders = []
    for item, not_after in zip(items, expiries, strict=True):
        nid = reminder_id(compiled, event, item.step)
        notification = {
            "id": nid,
            "rule": rule.id,
            "step": item.step,
            "scheduled_for": item.local,
            "deadline": deadline,
        }
        variables = template_variables(event, notification=notification, now=now)
        try:
            rendered = renderer.render(
                template, variables, channels=rule.channels, wanted_locale=locale, zone=zone.key
            )
        except RenderError as error:
            return ReminderPlan(compiled, failure=f"template '{template.id}' {error}")
        request = NotificationRequest(
            id=nid,
            event=event_ref(event),
            rule=RuleRef(id=rule.id, version=compiled.version),
            citizen=event.data.citizen,
            channels=list(rule.channels),
            delivery=rule.delivery,
            content=rendered.content,
            locale=rendered.locale,
            critical=rule.critical,
            not_after=not_after,
            scheduled_for=item.due,
            step=item.step,
            topic=rule.topic,
            topic_labels=rule.topic_labels,
        )
        reminders.append(
            PlannedReminder(
                request, due=item.due, local=item.local, past=item.past, moves=item.moves
            )
        )
    return ReminderPlan(compiled, reminders=reminders)


def failure_status(plan: ReminderPlan, event: CloudEvent, *, now: datetime) -> StatusChange:
    """The `failed` status reporting why a reminder rule could not plan for an event."""
    nid = reminder_id(plan.compiled, event, SCHEDULE_STEP)
    return failed(nid, plan.compiled, event, now=now, detail=plan.failure or "failed")


def cancels(rule: Rule, event: CloudEvent) -> bool:
    """Whether `event` is one of the rule's `cancel_on` types (globs allowed)."""
    return any(type_matches(pattern, event.type) for pattern in rule.cancel_on)


def cancelling_rules(rules: Iterable[CompiledRule], event: CloudEvent) -> list[CompiledRule]:
    """The live rules whose pending reminders `event` cancels for its subject."""
    return [c for c in rules if cancels(c.rule, event)]


def scheduled_rules(matched: Sequence[CompiledRule]) -> list[CompiledRule]:
    return [c for c in matched if c.rule.schedule is not None]
