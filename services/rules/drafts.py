"""Documents not saved yet, as the console's forms hold them: check a rule or template without
saving it, try an unsaved rule against an event, preview an unsaved template while typing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from common.problems import Problem
from schemas import validators
from schemas.events import CloudEvent
from schemas.rules import LocaleTemplate, Template
from services.rules import flows, repository, timers
from services.rules.api import DB, Admin, Document, valid_rule, valid_template
from services.rules.documents import (
    canonical,
    check_rule,
    parse_rule,
    parse_template,
    sample_variables,
)
from services.rules.errors import DocumentInvalid, FieldError, RenderError, invalid_document
from services.rules.previews import (
    HolidayLanguage,
    RuleTest,
    SmsPreview,
    stored_template,
    try_rule,
)
from services.rules.rendering import Renderer, html_from_text
from services.rules.sms import sms_length
from services.rules.variables import undefined_variables

router = APIRouter(prefix="/v1", tags=["rules"])

DRAFT_ID = "draft"


class Checked(BaseModel):
    """A valid document, not saved: the version a save would make (the current one when it is
    unchanged) and its stored form."""

    id: str
    version: int
    changed: bool
    document: dict[str, Any]
    would_cancel: int = Field(
        default=0, description="pending reminders saving this rule (disabled) would cancel"
    )


class RuleTry(BaseModel):
    """An unsaved rule (and optionally an unsaved version of its template) and an event."""

    rule: dict[str, Any]
    event: CloudEvent
    template: dict[str, Any] | None = None


class TemplateDraft(BaseModel):
    """An unsaved template and the event to render it for (default: a sample event)."""

    template: dict[str, Any]
    event: CloudEvent | None = None


class EmailDraft(BaseModel):
    subject: str | None = None
    text: str | None = None
    html: str | None = None


class LocaleDraft(BaseModel):
    sms: SmsPreview | None = None
    email: EmailDraft | None = None


class ErrorItem(BaseModel):
    path: str
    message: str


class UndefinedVariable(BaseModel):
    """A variable a text reads that the event lacks: `path` names the text."""

    path: str
    variable: str


class DraftPreview(BaseModel):
    """Each locale's texts as far as they render; `errors` names each text that did not, and
    `undefined` every variable the event lacks."""

    id: str
    locales: dict[str, LocaleDraft]
    errors: list[ErrorItem]
    undefined: list[UndefinedVariable]


def _prefixed(kind: str, prefix: str, error: DocumentInvalid) -> Problem:
    return invalid_document(
        kind,
        DocumentInvalid(
            [FieldError(f"{prefix}.{e.path}", e.message, e.line, e.column) for e in error.errors]
        ),
    )


def _draft_id(body: dict[str, Any], default: str) -> str:
    value = body.get("id")
    return value if isinstance(value, str) else default


@router.post("/rules/{rule_id}/check", response_model=Checked)
def check_rule_draft(rule_id: str, body: Document, _: Admin, db: DB) -> Checked:
    """Check a rule exactly as `PUT /v1/rules/{id}` would (422 naming each field, CEL errors
    with `line` and `column`), without saving it."""
    rule = valid_rule(db, body, rule_id)
    document = canonical(rule)
    would = repository.would_save("rule", rule.id, document, session=db)
    cancel = 0
    if would.changed and not rule.enabled:
        cancel = timers.pending_counts(session=db, rule_id=rule.id).get(rule.id, 0)
    return Checked(
        id=rule.id,
        version=would.version,
        changed=would.changed,
        document=document,
        would_cancel=cancel,
    )


@router.post("/templates/{template_id}/check", response_model=Checked)
def check_template_draft(
    template_id: str, body: Document, _: Admin, db: DB, request: Request
) -> Checked:
    """Check a template exactly as `PUT /v1/templates/{id}` would, without saving it."""
    template = valid_template(db, body, template_id, request.app.state.renderer)
    document = canonical(template)
    would = repository.would_save("template", template.id, document, session=db)
    return Checked(id=template.id, version=would.version, changed=would.changed, document=document)


@router.post("/rules/test", response_model=RuleTest)
def test_rule_draft(
    body: RuleTry, _: Admin, db: DB, request: Request, language: HolidayLanguage = None
) -> RuleTest:
    """What an unsaved rule would do with `event` (as `POST /v1/rules/{id}/test` answers for a
    stored one), with `template` in place of the stored template when given. The rule is
    checked as a save checks it: 422 with paths under `rule.` and `template.`."""
    try:
        rule = parse_rule(body.rule, _draft_id(body.rule, DRAFT_ID))
    except DocumentInvalid as error:
        raise _prefixed("rule", "rule", error) from None
    template: Template | None
    if body.template is not None:
        try:
            template = parse_template(body.template, _draft_id(body.template, rule.template))
        except DocumentInvalid as error:
            raise _prefixed("template", "template", error) from None
    else:
        template = stored_template(db, rule.template)
    try:
        check_rule(rule, template)
    except DocumentInvalid as error:
        raise _prefixed("rule", "rule", error) from None
    version = repository.would_save("rule", rule.id, canonical(rule), session=db).version
    compiled = flows.CompiledRule.build(rule, version)
    return try_rule(
        compiled,
        body.event,
        template=template,
        db=db,
        request=request,
        language=language,
        draft=True,
    )


def _render(
    renderer: Renderer,
    source: str | None,
    variables: dict[str, Any],
    *,
    path: str,
    html: bool,
    errors: list[ErrorItem],
    undefined: list[UndefinedVariable],
) -> str | None:
    if not source:
        return None
    undefined += [
        UndefinedVariable(path=path, variable=name)
        for name in undefined_variables(source, variables)
    ]
    try:
        return renderer.render_text(source, variables, path=path, html=html)
    except RenderError as error:
        errors.append(ErrorItem(path=error.path, message=error.message))
        return None


def _locale_draft(
    renderer: Renderer,
    tag: str,
    *,
    texts: LocaleTemplate,
    variables: dict[str, Any],
    errors: list[ErrorItem],
    undefined: list[UndefinedVariable],
) -> LocaleDraft:
    def render(name: str, *, html: bool = False) -> str | None:
        source = getattr(texts, name)
        path = f"locales.{tag}.{name}"
        return _render(
            renderer, source, variables, path=path, html=html, errors=errors, undefined=undefined
        )

    sms_body = render("sms")
    sms = None
    if sms_body is not None:
        length = sms_length(sms_body)
        sms = SmsPreview(
            body=sms_body,
            encoding=length.encoding,
            characters=length.characters,
            segments=length.segments,
            ucs2_characters=list(length.forced_by),
        )
    subject, text, html = (
        render("email_subject"),
        render("email_text"),
        render("email_html", html=True),
    )
    email = None
    if subject is not None or text is not None or html is not None:
        if html is None and text is not None and not texts.email_html:
            html = html_from_text(text)
        email = EmailDraft(
            subject=" ".join(subject.split()) if subject is not None else None,
            text=text,
            html=html,
        )
    return LocaleDraft(sms=sms, email=email)


def _scope(event: CloudEvent | None, tag: str, now: datetime) -> dict[str, Any]:
    if event is None:
        return sample_variables(tag)
    sample = sample_variables(tag)["notification"]  # a reminder's, as saving checks with
    variables = flows.template_variables(event, notification=sample, now=now)
    return {**variables, "locale": tag}


@router.post("/templates/preview", response_model=DraftPreview)
def preview_template_draft(body: TemplateDraft, _: Admin, request: Request) -> DraftPreview:
    """An unsaved template rendered per locale for `event` (else a sample event): SMS text,
    segments, encoding and the characters forcing UCS-2; email subject, text and HTML. A text
    that does not render is named in `errors` (200: the others still show); `undefined` names
    every variable the event lacks, with the text that reads it. 422 only when the document
    is not a template at all."""
    try:
        template = parse_template(body.template, _draft_id(body.template, DRAFT_ID))
    except DocumentInvalid as error:
        raise _prefixed("template", "template", error) from None
    renderer: Renderer = request.app.state.renderer
    now = datetime.now(UTC)
    errors: list[ErrorItem] = []
    undefined: list[UndefinedVariable] = []
    locales: dict[str, LocaleDraft] = {}
    for tag, texts in template.locales.items():
        try:
            validators.locale(tag)
        except ValueError as error:
            errors.append(ErrorItem(path=f"locales.{tag}", message=str(error)))
            continue
        variables = _scope(body.event, tag, now)
        locales[tag] = _locale_draft(
            renderer, tag, texts=texts, variables=variables, errors=errors, undefined=undefined
        )
    return DraftPreview(id=template.id, locales=locales, errors=errors, undefined=undefined)
