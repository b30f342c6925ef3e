"""Rule and template documents as the console's forms hold them: fields or YAML text, and the
service's field errors placed beside the field they concern. Pure: no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from schemas.documents import load_documents

RULE_FIELDS = (
    "id",
    "description",
    "on",
    "source",
    "when",
    "channels",
    "template",
    "relative_to",
    "offsets",
    "at",
    "calendar",
    "cancel_on",
    "critical",
    "enabled",
)
"""The form's fields, in the order of the page (the error summary follows it)."""

CHANNELS = ("sms", "email")
SCHEDULE_FIELDS = {"schedule.relative_to": "relative_to", "schedule.offsets": "offsets"}


def as_yaml(document: Mapping[str, Any]) -> str:
    """The document as the API's YAML (the key order of the stored document)."""
    return yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True)


def parse_yaml(text: str) -> dict[str, Any]:
    """One YAML mapping; ValueError saying what is wrong (with its line) otherwise."""
    try:
        documents = load_documents(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ValueError(f"{error.problem or 'not valid YAML'}{where}") from None
    except (yaml.YAMLError, ValueError) as error:
        raise ValueError(str(error)) from None
    if len(documents) != 1:
        raise ValueError("write exactly one rule")
    return documents[0]


def _words(text: str) -> list[str]:
    return [part for part in text.replace(",", " ").split() if part]


def rule_form(document: Mapping[str, Any]) -> dict[str, Any]:
    """The form's values for a stored (or empty) rule document."""
    schedule = document.get("schedule") or {}
    return {
        "id": document.get("id", ""),
        "description": document.get("description", ""),
        "on": document.get("on", ""),
        "source": document.get("source") or "",
        "when": document.get("when") or "",
        "channels": list(document.get("channels", CHANNELS)),
        "template": document.get("template", ""),
        "relative_to": schedule.get("relative_to", ""),
        "offsets": ", ".join(schedule.get("offsets", [])),
        "at": schedule.get("at") or "",
        "calendar": schedule.get("calendar") or "",
        "cancel_on": ", ".join(document.get("cancel_on", [])),
        "critical": bool(document.get("critical", False)),
        "enabled": bool(document.get("enabled", True)),
    }


def rule_document(form: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """`base` (the stored rule, or {}) with the form's fields in place: what the form saves.

    Fields the form does not show (delivery, expires_after, topic, …) keep their value."""
    document = dict(base)
    document["id"] = str(form.get("id", "")).strip()
    for name in ("description", "on", "template"):
        document[name] = str(form.get(name, "")).strip()
    for name in ("source", "when"):
        value = str(form.get(name, "")).strip()
        if value:
            document[name] = value
        else:
            document.pop(name, None)
    document["channels"] = [c for c in CHANNELS if c in form.get("channels", [])]
    document["cancel_on"] = _words(str(form.get("cancel_on", "")))
    document["critical"] = bool(form.get("critical"))
    document["enabled"] = bool(form.get("enabled"))
    schedule = _schedule(form, base.get("schedule") or {})
    if schedule:
        document["schedule"] = schedule
    else:
        document.pop("schedule", None)
    return document


def _schedule(form: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    relative_to = str(form.get("relative_to", "")).strip()
    offsets = _words(str(form.get("offsets", "")))
    optional = {name: str(form.get(name, "")).strip() for name in ("at", "calendar")}
    if not (relative_to or offsets or any(optional.values())):
        return {}
    schedule = dict(base)
    schedule["relative_to"] = relative_to
    schedule["offsets"] = offsets
    for name, value in optional.items():
        if value:
            schedule[name] = value
        else:
            schedule.pop(name, None)
    return schedule


def rule_field(path: str) -> str:
    """The form field an API error path belongs to (`schedule.offsets.1` → offsets)."""
    if path.startswith("rule."):
        path = path[len("rule.") :]
    for prefix, field in SCHEDULE_FIELDS.items():
        if path == prefix or path.startswith(prefix + "."):
            return field
    for name in ("at", "calendar"):
        if path.startswith(f"schedule.{name}"):
            return name
    head = path.split(".")[0]
    return head if head in RULE_FIELDS else "id"


def error_text(item: Mapping[str, Any], *, line_word: str, column_word: str) -> str:
    """The service's message, with the line and column of a CEL error."""
    message = str(item.get("message", ""))
    where = f"{line_word} {item.get('line')}, {column_word} {item.get('column')}"
    if item.get("line") is not None and where not in message:  # the API's may say it already
        message += f" ({where})"
    return message


def placed(
    problem: Mapping[str, Any], field_of: Any, *, line_word: str, column_word: str
) -> dict[str, str]:
    """{form field: message} for a 422 problem; several errors of one field are joined."""
    errors: dict[str, str] = {}
    for item in problem.get("errors") or []:
        field = field_of(str(item.get("path", "")))
        text = error_text(item, line_word=line_word, column_word=column_word)
        errors[field] = f"{errors[field]}; {text}" if field in errors else text
    if not errors and problem.get("detail"):
        errors[field_of("")] = str(problem["detail"])
    return errors


def sample_event(rule: Mapping[str, Any], *, source: str | None = None) -> str:
    """A pre-filled sample event for the rule's event type, as JSON text to edit."""
    event_type = str(rule.get("on") or "example.event").replace("*", "example")
    schedule = rule.get("schedule") or {}
    data: dict[str, Any] = {
        "citizen": {
            "id": "ES-12345678Z",
            "name": "Ana",
            "phone": "+34600111222",
            "email": "ana@example.es",
            "locale": "es",
            "timezone": "Europe/Madrid",
        }
    }
    field = str(schedule.get("relative_to") or "")
    if field.startswith("data.") and field.count(".") == 1:
        data[field.split(".", 1)[1]] = "2027-03-15"
    event = {
        "specversion": "1.0",
        "id": "console-sample-1",
        "source": rule.get("source") or source or "demo",
        "type": event_type,
        "subject": "case/0001",
        "time": "2027-01-04T09:00:00Z",
        "data": data,
    }
    return json.dumps(event, indent=2, ensure_ascii=False)
