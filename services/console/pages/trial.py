"""Try it: a rule against a sample event, without sending anything (`POST /v1/rules/{id}/test`).

The answer shows whether it matches and why, each planned reminder at its local date and time
in the citizen's zone with the reason for every move, the texts per channel, and what the
event would cancel."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from services.console import ruleforms
from services.console.errors import ServiceError
from services.console.i18n import babel_locale
from services.console.pages.audit import who
from services.console.pages.rules import visible_rule
from services.console.roles import EVERYONE, Table
from services.console.web import GUARDS, Console, Signed, State

router = APIRouter(dependencies=GUARDS)

ACCESS: Table = {("POST", "/rules/{rule_id}/try"): EVERYONE}
"""Trying changes nothing, so viewers may too."""

EVENT_LIMIT = 64_000
MOMENT = {"es": "EEEE d 'de' MMMM 'de' y, HH:mm", "en": "EEEE d MMMM y, HH:mm"}
"""A reminder's local date and time, spelled out (the weekday matters: moves are about it)."""


def local_moment(value: str | None, zone: str | None, locale: str) -> str:
    """A reminder's time in the citizen's zone, in the reader's language (full date, time)."""
    if not value:
        return "—"
    moment = datetime.fromisoformat(value)
    if zone:
        moment = moment.astimezone(ZoneInfo(zone))
    pattern = MOMENT.get(locale, MOMENT["en"])
    return format_datetime(moment, pattern, locale=babel_locale(locale))


def day(value: str, locale: str) -> str:
    """ "Saturday 13" / "sábado 13"."""
    return format_date(date.fromisoformat(value), "EEEE d", locale=babel_locale(locale))


def _moves(request: Request, state: Console, moves: list[dict[str, Any]], locale: str) -> list[str]:
    _ = state.pages.gettext
    texts = []
    for move in moves:
        reason = move.get("holiday") or _(request, "weekend")
        if move.get("reason") == "holiday" and not move.get("holiday"):
            reason = _(request, "public holiday")
        texts.append(
            _(request, "moved from {old} to {new}: {reason}").format(
                old=day(move["from"], locale), new=day(move["to"], locale), reason=reason
            )
        )
    return texts


def planned(
    request: Request, state: Console, result: dict[str, Any], locale: str
) -> list[dict[str, Any]]:
    """Each planned notification as the page shows it."""
    rows = []
    for item in result.get("notifications", []):
        zone = item.get("zone")
        rows.append(
            {
                "step": item.get("step", "now"),
                "when": local_moment(
                    item.get("local_time") or item.get("scheduled_for"), zone, locale
                ),
                "zone": zone,
                "skipped": item.get("skipped", False),
                "moves": _moves(request, state, item.get("moves", []), locale),
                "channels": item.get("channels", []),
                "locale": item.get("locale", ""),
                "content": item.get("content", {}),
            }
        )
    return rows


def _event_problems(request: Request, state: Console, text: str) -> tuple[Any, str | None]:
    _ = state.pages.gettext
    if len(text) > EVENT_LIMIT:
        return None, _(request, "The sample event is too long")
    try:
        event = json.loads(text)
    except ValueError as error:
        return None, _(request, "This is not valid JSON: {problem}").format(problem=str(error))
    if not isinstance(event, dict):
        return None, _(request, "The sample event must be a JSON object")
    return event, None


@router.post("/rules/{rule_id}/try")
def try_rule(
    request: Request,
    rule_id: str,
    state: State,
    member: Signed,
    event: Annotated[str, Form()] = "",
) -> Response:
    record = visible_rule(state, member, rule_id)
    locale = state.pages.locale(request)
    parsed, problem = _event_problems(request, state, event)
    result = None
    errors: dict[str, str] = {}
    if problem:
        errors["event"] = problem
    else:
        try:
            result = state.services.rules.try_rule(
                rule_id, parsed, language=locale, actor=member.email
            )
        except ServiceError as error:
            if error.status != 422:
                raise
            words = {
                "line_word": state.pages.gettext(request, "line"),
                "column_word": state.pages.gettext(request, "column"),
            }
            errors = {
                "event": "; ".join(
                    f"{path}: {text}" if path else text
                    for path, text in _paths(error.problem, words).items()
                )
            }
    return state.pages.render(
        request,
        "rules/rule.html",
        status=422 if errors else 200,
        record=record,
        rule=record["document"],
        updated_by=who(record.get("updated_by", "")),
        may_edit=not member.read_only,
        event_text=event or ruleforms.sample_event(record["document"]),
        errors=errors,
        result=result,
        planned=planned(request, state, result, locale) if result else [],
        notice=None,
    )


def _paths(problem: dict[str, Any], words: dict[str, str]) -> dict[str, str]:
    return ruleforms.placed(problem, lambda path: path, **words)
