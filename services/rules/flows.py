"""The rule engine's pure steps: compile conditions, match events, plan notifications.

No I/O here: the consumer feeds events and the current rules in, and publishes what comes out.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

import cel

from schemas.decisions import Reason
from schemas.durations import Duration, parse_duration
from schemas.events import CloudEvent, EventRef
from schemas.notifications import (
    PREFERENCES_URL_PLACEHOLDER,
    Channel,
    Content,
    NotificationRequest,
    RuleRef,
    Status,
    StatusChange,
    notification_id,
)
from schemas.rules import Rule, Template
from services.rules.citizens import Preference, wanted_locale
from services.rules.errors import ConditionError, RenderError
from services.rules.rendering import Renderer


def compile_condition(expression: str) -> cel.Program:
    """Compile a CEL condition, raising ConditionError with the parser's message."""
    try:
        return cel.compile(expression)
    except Exception as error:  # the Rust core raises ValueError; be robust to others
        raise ConditionError(str(error)) from error


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A live rule version with its condition compiled once."""

    rule: Rule
    version: int
    condition: cel.Program | None = None

    @classmethod
    def build(cls, rule: Rule, version: int) -> CompiledRule:
        condition = compile_condition(rule.when) if rule.when else None
        return cls(rule=rule, version=version, condition=condition)


def activation(event: CloudEvent, *, now: datetime) -> cel.Context:
    """The CEL variables of one event, built once and shared by every rule's condition."""
    return cel.Context(
        {
            "data": event.data.model_dump(mode="json", exclude_none=True),
            "subject": event.subject,
            "type": event.type,
            "source": event.source,
            "id": event.id,
            "time": event.time or now,
        }
    )


def type_matches(pattern: str, event_type: str) -> bool:
    """`license.*` matches `license.expiring`; comparison is case-sensitive."""
    return fnmatchcase(event_type, pattern)


def source_matches(wanted: str | None, source: str) -> bool:
    """No source means any; otherwise the same agency or one of its sub-sources."""
    return wanted is None or source == wanted or source.startswith(f"{wanted}/")


def condition_holds(condition: cel.Program | None, context: cel.Context) -> bool:
    """Evaluate a rule's condition; errors and non-boolean results raise ConditionError."""
    if condition is None:
        return True
    try:
        result = condition.execute(context)
    except Exception as error:  # a missing field is a KeyError, a bad operand a TypeError
        raise ConditionError(f"{type(error).__name__}: {error}") from error
    if not isinstance(result, bool):
        raise ConditionError(f"the condition gave {result!r}, not true or false")
    return result


@dataclass(slots=True)
class Matches:
    """The rules an event matched, the conditions that could not be evaluated, and the rules
    whose event type matched but whose source or condition did not (`misses`)."""

    rules: list[CompiledRule] = field(default_factory=list)
    errors: list[tuple[CompiledRule, str]] = field(default_factory=list)
    misses: list[tuple[CompiledRule, Reason]] = field(default_factory=list)


def match(rules: Iterable[CompiledRule], event: CloudEvent, *, now: datetime) -> Matches:
    """Which enabled rules an event triggers; a failing condition counts as no match."""
    result = Matches()
    context: cel.Context | None = None
    for compiled in rules:
        rule = compiled.rule
        if not rule.enabled or not type_matches(rule.on, event.type):
            continue
        if not source_matches(rule.source, event.source):
            result.misses.append((compiled, Reason.SOURCE_MISMATCH))
            continue
        if compiled.condition is not None and context is None:
            context = activation(event, now=now)
        try:
            if context is None or condition_holds(compiled.condition, context):
                result.rules.append(compiled)
            else:
                result.misses.append((compiled, Reason.CONDITION_FALSE))
        except ConditionError as error:
            result.errors.append((compiled, str(error)))
    return result


def shift(moment: datetime, duration: Duration) -> datetime:
    """`moment` moved by a signed duration; months and years keep the day where they can."""
    months = duration.sign * (duration.years * 12 + duration.months)
    if months:
        index = moment.year * 12 + moment.month - 1 + months
        year, month = divmod(index, 12)
        day = min(moment.day, calendar.monthrange(year, month + 1)[1])
        moment = moment.replace(year=year, month=month + 1, day=day)
    delta = timedelta(
        weeks=duration.weeks,
        days=duration.days,
        hours=duration.hours,
        minutes=duration.minutes,
        seconds=duration.seconds,
    )
    return moment + duration.sign * delta


def out_of_range(what: str) -> str:
    """Why a time could not be computed: it falls outside the years 1 to 9999."""
    return f"{what} cannot be computed: it falls outside the calendar (years 1 to 9999)"


def event_ref(event: CloudEvent) -> EventRef:
    return EventRef(source=event.source, id=event.id, type=event.type, subject=event.subject)


def template_variables(
    event: CloudEvent, *, notification: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """What a template sees of an event (CONTRACT.md, "Templates")."""
    data = event.data.model_dump(mode="json")
    return {
        "citizen": data["citizen"],
        "data": data,
        "subject": event.subject,
        "type": event.type,
        "time": event.time or now,
        "source": event.source,
        "id": event.id,
        "notification": dict(notification),
        "preferences_url": PREFERENCES_URL_PLACEHOLDER,
    }


@dataclass(frozen=True, slots=True)
class Planned:
    """What one matched rule decided for an event: a request to send, or a failure to report."""

    request: NotificationRequest | None = None
    failure: StatusChange | None = None


def immediate_id(compiled: CompiledRule, event: CloudEvent) -> str:
    return notification_id(
        rule_id=compiled.rule.id,
        rule_version=compiled.version,
        source=event.source,
        event_id=event.id,
        step="now",
    )


def plan_now(
    compiled: CompiledRule,
    template: Template,
    event: CloudEvent,
    *,
    renderer: Renderer,
    now: datetime,
    preference: Preference | None = None,
) -> Planned:
    """The notification an immediate rule makes for an event, or the reason it cannot;
    `preference` is the citizen's stored zone and locale, used where the event has none."""
    rule = compiled.rule
    nid = immediate_id(compiled, event)
    variables = template_variables(
        event, notification={"id": nid, "rule": rule.id, "step": "now"}, now=now
    )
    try:
        rendered = renderer.render(
            template,
            variables,
            channels=rule.channels,
            wanted_locale=wanted_locale(event, preference),
            zone=preference.timezone if preference and not event.data.citizen.timezone else None,
        )
    except RenderError as error:
        return Planned(
            failure=failed(
                nid, compiled, event, now=now, detail=f"template '{template.id}' {error}"
            )
        )
    moment = event.time or now
    try:
        not_after = (
            shift(moment, parse_duration(rule.expires_after)) if rule.expires_after else None
        )
    except (OverflowError, ValueError):
        detail = out_of_range(f"expires_after {rule.expires_after} from {moment.isoformat()}")
        return Planned(failure=failed(nid, compiled, event, now=now, detail=detail))
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
        step="now",
        topic=rule.topic,
        topic_labels=rule.topic_labels,
    )
    return Planned(request=request)


def failed(
    nid: str, compiled: CompiledRule, event: CloudEvent, *, now: datetime, detail: str
) -> StatusChange:
    """A `failed` status for a notification that could not even be composed."""
    return StatusChange(
        notification_id=nid,
        event=event_ref(event),
        rule=compiled.rule.id,
        status=Status.FAILED,
        at=now,
        detail=detail[:1000],
    )


def missing_template(compiled: CompiledRule, event: CloudEvent, *, now: datetime) -> Planned:
    nid = immediate_id(compiled, event)
    return Planned(
        failure=failed(
            nid,
            compiled,
            event,
            now=now,
            detail=f"template '{compiled.rule.template}' does not exist",
        )
    )


def plan(
    matched: Sequence[CompiledRule],
    templates: Mapping[str, Template],
    event: CloudEvent,
    *,
    renderer: Renderer,
    now: datetime,
    preference: Preference | None = None,
) -> list[Planned]:
    """Everything the immediate rules among `matched` decide for one event.

    Rules with a schedule are left out: their reminders become timers (`reminders.py`).
    """
    plans = []
    for compiled in matched:
        if compiled.rule.schedule is not None:
            continue
        template = templates.get(compiled.rule.template)
        if template is None:
            plans.append(missing_template(compiled, event, now=now))
        else:
            plans.append(
                plan_now(
                    compiled, template, event, renderer=renderer, now=now, preference=preference
                )
            )
    return plans


def preview(
    template: Template, event: CloudEvent, *, renderer: Renderer, now: datetime
) -> dict[str, Content]:
    """The template rendered for an event in every locale, for each channel it has texts for.

    Raises RenderError naming the first text that does not render.
    """
    variables = template_variables(event, notification={"id": "preview"}, now=now)
    rendered = {}
    for tag, texts in template.locales.items():
        channels = [Channel.SMS] if texts.sms else []
        if texts.email_subject and texts.email_text:
            channels.append(Channel.EMAIL)
        rendered[tag] = renderer.render(
            template, variables, channels=channels, wanted_locale=tag
        ).content
    return rendered


def explain(compiled: CompiledRule, event: CloudEvent, *, now: datetime) -> str | None:
    """Why a rule (enabled or not) would not match an event, or None when it would."""
    rule = compiled.rule
    if not type_matches(rule.on, event.type):
        return f"the event type '{event.type}' does not match '{rule.on}'"
    if not source_matches(rule.source, event.source):
        return f"the event source '{event.source}' is not '{rule.source}'"
    try:
        if not condition_holds(compiled.condition, activation(event, now=now)):
            return "the condition is false for this event"
    except ConditionError as error:
        return f"the condition failed: {error}"
    return None
