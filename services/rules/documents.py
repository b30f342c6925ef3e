"""Checking rule and template documents before they are saved (pure; no I/O).

Each problem becomes a FieldError naming the field, so an admin sees every mistake at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from common.problems import error_path
from schemas import validators
from schemas.durations import parse_duration
from schemas.notifications import PREFERENCES_URL_PLACEHOLDER, Channel
from schemas.rules import LocaleTemplate, Rule, Template
from services.rules.conditions import condition_problems, where
from services.rules.errors import DocumentInvalid, FieldError, RenderError
from services.rules.reminder_dates import check_calendar
from services.rules.rendering import Renderer, SampleData

_RELATIVE_TO = re.compile(r"^(time|data(\.[A-Za-z_][A-Za-z0-9_]*)+)$")

SAMPLE_CITIZEN: dict[str, Any] = {
    "id": "ES-00000000T",
    "name": "Ana",
    "phone": "+34600111222",
    "email": "ana@example.es",
    "locale": "es",
    "timezone": "Europe/Madrid",
}


def _with_id(body: Mapping[str, Any], path_id: str) -> dict[str, Any]:
    document = dict(body)
    if document.get("id") is None:
        document["id"] = path_id
    elif document["id"] != path_id:
        raise DocumentInvalid(
            [FieldError("id", f"'{document['id']}' differs from '{path_id}' in the URL")]
        )
    return document


def _pydantic_errors(error: ValidationError) -> DocumentInvalid:
    return DocumentInvalid(
        [
            FieldError(error_path(e["loc"]), str(e["msg"]).removeprefix("Value error, "))
            for e in error.errors()
        ]
    )


def parse_rule(body: Mapping[str, Any], path_id: str) -> Rule:
    """The rule in `body` (its id defaulting to the URL's), or DocumentInvalid."""
    try:
        return Rule.model_validate(_with_id(body, path_id))
    except ValidationError as error:
        raise _pydantic_errors(error) from None


def parse_template(body: Mapping[str, Any], path_id: str) -> Template:
    """The template in `body` (its id defaulting to the URL's), or DocumentInvalid."""
    try:
        return Template.model_validate(_with_id(body, path_id))
    except ValidationError as error:
        raise _pydantic_errors(error) from None


def canonical(document: Rule | Template) -> dict[str, Any]:
    """The stored form: every field spelled out, so equal documents compare equal."""
    return document.model_dump(mode="json")


def missing_texts(template: Template, channels: Iterable[Channel]) -> list[FieldError]:
    """The texts each channel needs that some locale of the template lacks."""
    errors = []
    for tag, texts in template.locales.items():
        for channel in channels:
            needed = ("sms",) if channel == Channel.SMS else ("email_subject", "email_text")
            errors += [
                FieldError(f"locales.{tag}.{name}", f"needed for the {channel} channel")
                for name in needed
                if not getattr(texts, name)
            ]
    return errors


def check_rule(rule: Rule, template: Template | None) -> None:
    """Everything a well-formed rule must also satisfy; raises DocumentInvalid."""
    errors: list[FieldError] = []
    if rule.when is not None:
        errors += [
            FieldError("when", f"not a valid CEL expression: {problem}", *where(problem))
            for problem in condition_problems(rule.when)
        ]
    if rule.expires_after is not None and parse_duration(rule.expires_after).sign < 0:
        errors.append(FieldError("expires_after", "must be a positive duration, like P2D"))
    if rule.schedule is not None and not _RELATIVE_TO.match(rule.schedule.relative_to):
        errors.append(
            FieldError("schedule.relative_to", "name 'time' or an event field like data.expires_on")
        )
    if rule.schedule is not None and rule.schedule.calendar is not None:
        problem = check_calendar(rule.schedule.calendar)
        if problem:
            errors.append(FieldError("schedule.calendar", problem))
    if template is None:
        errors.append(FieldError("template", f"there is no template '{rule.template}'"))
    else:
        missing = [e.path for e in missing_texts(template, rule.channels)]
        if missing:
            errors.append(
                FieldError(
                    "channels",
                    f"template '{template.id}' lacks the texts "
                    f"these channels need: {', '.join(missing)}",
                )
            )
    if errors:
        raise DocumentInvalid(errors)


def sample_variables(locale: str) -> dict[str, Any]:
    """A plausible event for checking templates: a full citizen, any `data` field allowed."""
    citizen = {**SAMPLE_CITIZEN, "locale": locale}
    return {
        "citizen": citizen,
        "data": SampleData(citizen=citizen),
        "subject": "sample/1",
        "type": "sample.event",
        "time": datetime(2026, 11, 29, 10, 0, tzinfo=UTC),
        "source": "sample",
        "id": "sample-event",
        "notification": {
            "id": "00000000-0000-0000-0000-000000000000",
            "rule": "sample",
            "step": "-P7D",
            "scheduled_for": datetime(2026, 12, 6, 9, 0, tzinfo=UTC),
            "deadline": datetime(2026, 12, 13, tzinfo=UTC).date(),
        },
        "locale": locale,
        "preferences_url": PREFERENCES_URL_PLACEHOLDER,
    }


def _check_texts(tag: str, texts: LocaleTemplate, renderer: Renderer) -> list[FieldError]:
    errors = []
    if not any((texts.sms, texts.email_subject, texts.email_text, texts.email_html)):
        errors.append(FieldError(f"locales.{tag}", "give at least one text"))
    if bool(texts.email_subject) != bool(texts.email_text):
        errors.append(FieldError(f"locales.{tag}", "email_subject and email_text go together"))
    if texts.email_html and not texts.email_text:
        errors.append(FieldError(f"locales.{tag}.email_text", "email_html needs email_text"))
    variables = sample_variables(tag)
    limit = renderer.limits.max_text_bytes
    for name in ("sms", "email_subject", "email_text", "email_html"):
        source = getattr(texts, name)
        if source and len(source.encode()) > limit:
            message = (
                f"is {len(source.encode())} bytes; a text may have at most {limit}"
                " (AVISA_RULES_TEMPLATE_MAX_BYTES)"
            )
            errors.append(FieldError(f"locales.{tag}.{name}", message))
        elif source:
            try:
                renderer.render_text(
                    source, variables, path=f"locales.{tag}.{name}", html=name == "email_html"
                )
            except RenderError as error:
                errors.append(FieldError(error.path, f"does not render: {error.message}"))
    return errors


def check_template(
    template: Template, renderer: Renderer, users: Mapping[str, Iterable[Channel]]
) -> None:
    """Tags must be languages, texts must render against a sample event, and the rules using
    the template (`users`: rule id → channels) must still find the texts they need."""
    errors: list[FieldError] = []
    for tag, texts in template.locales.items():
        try:
            validators.locale(tag)
        except ValueError as error:
            errors.append(FieldError(f"locales.{tag}", str(error)))
            continue
        errors += _check_texts(tag, texts, renderer)
    for rule_id, channels in users.items():
        errors += [
            FieldError(e.path, f"{e.message} (rule '{rule_id}')")
            for e in missing_texts(template, channels)
        ]
    if errors:
        raise DocumentInvalid(errors)
