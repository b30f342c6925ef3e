"""Admin dry runs: a template rendered for an event, a rule tested against an event."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from common.problems import Problem
from schemas.events import CloudEvent
from schemas.notifications import Channel, Content, EmailContent
from schemas.rules import Rule, Template
from services.rules import flows, reminder_dates, reminders, repository, timers
from services.rules.api import DB, Admin
from services.rules.citizens import CitizenDirectory, Preference
from services.rules.errors import (
    DocumentInvalid,
    FieldError,
    RenderError,
    invalid_document,
    not_found,
)
from services.rules.sms import sms_length

router = APIRouter(prefix="/v1", tags=["rules"])

HolidayLanguage = Annotated[
    str | None,
    Query(
        pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$",
        description="the language of holiday names (es, en); default: the default locale",
    ),
]


class SmsPreview(BaseModel):
    """`ucs2_characters`: the characters that forced UCS-2 (empty for GSM-7)."""

    body: str
    encoding: str
    characters: int
    segments: int
    ucs2_characters: list[str] = []


class LocalePreview(BaseModel):
    sms: SmsPreview | None = None
    email: EmailContent | None = None


class TemplatePreview(BaseModel):
    id: str
    version: int
    locales: dict[str, LocalePreview]


class Move(BaseModel):
    """A reminder moved back a day off a weekend or a public holiday (`holiday`: its name)."""

    from_: date = Field(serialization_alias="from")
    to: date
    reason: str = Field(description="weekend or holiday")
    holiday: str | None = None


class PlannedNotification(BaseModel):
    """One notification a rule would make: now, or a reminder at `scheduled_for` (UTC) and
    `local_time` in `zone` (the citizen's); `skipped` when that time already passed; `moves`
    say why it left the day its offset gave, oldest day first."""

    id: str
    step: str = "now"
    channels: list[Channel]
    delivery: str
    locale: str
    scheduled_for: datetime | None
    local_time: datetime | None = None
    zone: str | None = None
    moves: list[Move] = []
    skipped: bool = False
    not_after: datetime | None
    content: LocalePreview


class PendingTimer(BaseModel):
    """A stored reminder the tested event would cancel."""

    id: str
    rule: str
    step: str
    scheduled_for: datetime


class RuleTest(BaseModel):
    """What a rule would do with an event, without doing it."""

    rule: str
    version: int
    enabled: bool
    matches: bool
    reason: str | None = None
    notifications: list[PlannedNotification]
    failures: list[str]
    cancels: list[PendingTimer]


def _locale_preview(content: Content) -> LocalePreview:
    sms = None
    if content.sms is not None:
        length = sms_length(content.sms.body)
        sms = SmsPreview(
            body=content.sms.body,
            encoding=length.encoding,
            characters=length.characters,
            segments=length.segments,
            ucs2_characters=list(length.forced_by),
        )
    return LocalePreview(sms=sms, email=content.email)


def _render_problem(error: RenderError) -> Problem:
    return invalid_document("template", DocumentInvalid([FieldError(error.path, error.message)]))


@router.post("/templates/{template_id}/preview", response_model=TemplatePreview)
def preview_template(
    template_id: str, event: CloudEvent, _: Admin, db: DB, request: Request
) -> TemplatePreview:
    """The template rendered for `event` in every locale, with SMS length and encoding."""
    row = repository.get("template", template_id, session=db)
    if row is None:
        raise not_found("template", template_id)
    try:
        rendered = flows.preview(
            Template.model_validate(row.document),
            event,
            renderer=request.app.state.renderer,
            now=datetime.now(UTC),
        )
    except RenderError as error:
        raise _render_problem(error) from None
    return TemplatePreview(
        id=row.id,
        version=row.version,
        locales={tag: _locale_preview(content) for tag, content in rendered.items()},
    )


def _preference(request: Request, event: CloudEvent) -> Preference | None:
    """The citizen's stored zone and locale, as the rule engine would use them."""
    citizens: CitizenDirectory = request.app.state.citizens
    return citizens.get(event.data.citizen.id)


def _planned(
    compiled: flows.CompiledRule,
    template: Template | None,
    event: CloudEvent,
    *,
    request: Request,
    now: datetime,
) -> tuple[list[PlannedNotification], list[str]]:
    templates = {template.id: template} if template is not None else {}
    notifications, failures = [], []
    plans = flows.plan(
        [compiled],
        templates,
        event,
        renderer=request.app.state.renderer,
        now=now,
        preference=_preference(request, event),
    )
    for planned in plans:
        if planned.failure is not None:
            failures.append(planned.failure.detail or "failed")
        if (r := planned.request) is not None:
            notifications.append(
                PlannedNotification(
                    id=r.id,
                    channels=r.channels,
                    delivery=r.delivery,
                    locale=r.locale,
                    scheduled_for=r.scheduled_for,
                    not_after=r.not_after,
                    content=_locale_preview(r.content),
                )
            )
    return notifications, failures


def _moves(rule: Rule, moves: Sequence[reminder_dates.Move], language: str) -> list[Move]:
    """The moves, holidays named in `language` (the rule's calendar in that language)."""
    code = rule.schedule.calendar if rule.schedule is not None else None
    return [
        Move(
            from_=m.from_day,
            to=m.to_day,
            reason=m.reason,
            holiday=reminder_dates.holiday_name(code, m.from_day, language)
            if m.holiday and code
            else None,
        )
        for m in moves
    ]


def _reminders(
    compiled: flows.CompiledRule,
    template: Template | None,
    event: CloudEvent,
    *,
    request: Request,
    now: datetime,
    language: str,
) -> tuple[list[PlannedNotification], list[str]]:
    if template is None:
        return [], [f"template '{compiled.rule.template}' does not exist"]
    plan = reminders.plan_reminders(
        compiled,
        template,
        event,
        renderer=request.app.state.renderer,
        default_zone=request.app.state.default_timezone,
        now=now,
        preference=_preference(request, event),
    )
    if plan.failure is not None:
        return [], [plan.failure]
    return [
        PlannedNotification(
            id=r.request.id,
            step=r.request.step,
            channels=r.request.channels,
            delivery=r.request.delivery,
            locale=r.request.locale,
            scheduled_for=r.due,
            local_time=r.local,
            zone=str(r.local.tzinfo),
            moves=_moves(compiled.rule, r.moves, language),
            skipped=r.past,
            not_after=r.request.not_after,
            content=_locale_preview(r.request.content),
        )
        for r in plan.reminders
    ], []


def _cancels(db: Session, event: CloudEvent, draft: Rule | None = None) -> list[PendingTimer]:
    """The pending reminders of the event's subject that rules cancelling on it would stop;
    a `draft` stands in for the stored rule of its id."""
    rules = [
        Rule.model_validate(row.document)
        for row in repository.list_current("rule", session=db)
        if draft is None or row.id != draft.id
    ]
    rule_ids = [
        rule.id for rule in [*rules, *([draft] if draft else [])] if reminders.cancels(rule, event)
    ]
    return [
        PendingTimer(
            id=row.notification_id,
            rule=row.rule_id,
            step=row.step,
            scheduled_for=timers.as_utc(row.due_at),
        )
        for row in timers.pending_of_subject(event.subject, rule_ids, session=db)
        if row.source == event.source
        and timers.as_utc(row.event_time) <= (event.time or datetime.now(UTC))
    ]


def stored_template(db: Session, template_id: str) -> Template | None:
    row = repository.get("template", template_id, session=db)
    return Template.model_validate(row.document) if row is not None else None


def try_rule(
    compiled: flows.CompiledRule,
    event: CloudEvent,
    *,
    template: Template | None,
    db: Session,
    request: Request,
    language: str | None,
    draft: bool = False,
) -> RuleTest:
    """Whether a rule (stored or, as a `draft`, not; enabled or not) matches `event`, what it
    would plan with `template`, and which stored reminders the event would cancel; holidays
    are named in `language` (default: the service's default locale)."""
    now = datetime.now(UTC)
    reason = flows.explain(compiled, event, now=now)
    notifications: list[PlannedNotification] = []
    failures: list[str] = []
    if reason is None and compiled.rule.schedule is not None:
        language = language or request.app.state.renderer.default_locale
        notifications, failures = _reminders(
            compiled, template, event, request=request, now=now, language=language
        )
    elif reason is None:
        notifications, failures = _planned(compiled, template, event, request=request, now=now)
    return RuleTest(
        rule=compiled.rule.id,
        version=compiled.version,
        enabled=compiled.rule.enabled,
        matches=reason is None,
        reason=reason,
        notifications=notifications,
        failures=failures,
        cancels=_cancels(db, event, compiled.rule if draft else None),
    )


@router.post("/rules/{rule_id}/test", response_model=RuleTest)
def test_rule(
    rule_id: str,
    event: CloudEvent,
    _: Admin,
    db: DB,
    request: Request,
    language: HolidayLanguage = None,
) -> RuleTest:
    """Whether the stored rule matches `event` (enabled or not), and what it would plan."""
    row = repository.get("rule", rule_id, session=db)
    if row is None:
        raise not_found("rule", rule_id)
    compiled = flows.CompiledRule.build(Rule.model_validate(row.document), row.version)
    template = stored_template(db, compiled.rule.template)
    return try_rule(compiled, event, template=template, db=db, request=request, language=language)
