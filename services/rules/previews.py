"""Admin dry runs: a template rendered for an event, a rule tested against an event."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel

from common.problems import Problem
from schemas.events import CloudEvent
from schemas.notifications import Channel, Content, EmailContent
from schemas.rules import Rule, Template
from services.rules import flows, repository
from services.rules.api import DB, Admin
from services.rules.errors import (
    DocumentInvalid,
    FieldError,
    RenderError,
    invalid_document,
    not_found,
)
from services.rules.sms import sms_length

router = APIRouter(prefix="/v1", tags=["rules"])


class SmsPreview(BaseModel):
    body: str
    encoding: str
    characters: int
    segments: int


class LocalePreview(BaseModel):
    sms: SmsPreview | None = None
    email: EmailContent | None = None


class TemplatePreview(BaseModel):
    id: str
    version: int
    locales: dict[str, LocalePreview]


class PlannedNotification(BaseModel):
    id: str
    channels: list[Channel]
    delivery: str
    locale: str
    scheduled_for: datetime | None
    not_after: datetime | None
    content: LocalePreview


class RuleTest(BaseModel):
    """What a rule would do with an event, without doing it."""

    rule: str
    version: int
    enabled: bool
    matches: bool
    reason: str | None = None
    notifications: list[PlannedNotification]
    failures: list[str]
    cancels: list[str]


def _locale_preview(content: Content) -> LocalePreview:
    sms = None
    if content.sms is not None:
        length = sms_length(content.sms.body)
        sms = SmsPreview(
            body=content.sms.body,
            encoding=length.encoding,
            characters=length.characters,
            segments=length.segments,
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
    plans = flows.plan([compiled], templates, event, renderer=request.app.state.renderer, now=now)
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


@router.post("/rules/{rule_id}/test", response_model=RuleTest)
def test_rule(rule_id: str, event: CloudEvent, _: Admin, db: DB, request: Request) -> RuleTest:
    """Whether the stored rule matches `event` (enabled or not), and what it would plan."""
    row = repository.get("rule", rule_id, session=db)
    if row is None:
        raise not_found("rule", rule_id)
    compiled = flows.CompiledRule.build(Rule.model_validate(row.document), row.version)
    now = datetime.now(UTC)
    reason = flows.explain(compiled, event, now=now)
    matches = reason is None
    notifications: list[PlannedNotification] = []
    failures: list[str] = []
    if matches:
        template_row = repository.get("template", compiled.rule.template, session=db)
        template = Template.model_validate(template_row.document) if template_row else None
        notifications, failures = _planned(compiled, template, event, request=request, now=now)
        if compiled.rule.schedule is not None:
            reason = "reminders (schedule) are not planned yet: they need timers"
    return RuleTest(
        rule=rule_id,
        version=row.version,
        enabled=compiled.rule.enabled,
        matches=matches,
        reason=reason,
        notifications=notifications,
        failures=failures,
        cancels=[],
    )
