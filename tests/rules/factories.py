"""Plain keyword factories for rules-service tests."""

from __future__ import annotations

from typing import Any

from schemas.events import CloudEvent
from schemas.rules import Rule, Template
from services.rules.flows import CompiledRule

ADMIN = {"Authorization": "Bearer dev-admin-key"}

SMS_ES = (
    "Hola {{ citizen.name }}, tu permiso de conducir caduca el "
    "{{ data.expires_on | fecha }}. Renuévalo en https://sede.dgt.es"
)


def event_body(
    *,
    id: str = "dgt-2026-000123",
    source: str = "dgt",
    type: str = "license.expiring",
    subject: str = "license/B-12345678",
    time: str | None = "2026-11-29T10:00:00Z",
    citizen: dict[str, Any] | None = None,
    **data: Any,
) -> dict[str, Any]:
    """The contract's example event, with any attribute or data field replaced."""
    person = {
        "id": "ES-12345678Z",
        "name": "Ana",
        "phone": "+34600111222",
        "email": "ana@example.es",
        "locale": "es",
        "timezone": "Europe/Madrid",
    }
    person.update(citizen or {})
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": id,
        "source": source,
        "type": type,
        "subject": subject,
        "data": {
            "citizen": {k: v for k, v in person.items() if v is not None},
            "expires_on": "2027-01-15",
            **data,
        },
    }
    if time is not None:
        body["time"] = time
    return body


def make_event(**kwargs: Any) -> CloudEvent:
    return CloudEvent.model_validate(event_body(**kwargs))


def template_body(*, id: str = "licencia-renovacion", **locales: Any) -> dict[str, Any]:
    return {
        "id": id,
        "locales": locales
        or {
            "es": {
                "sms": SMS_ES,
                "email_subject": "Tu permiso caduca el {{ data.expires_on | fecha }}",
                "email_text": "Hola {{ citizen.name }}:\n\nRenuévalo en https://sede.dgt.es",
            },
            "en": {
                "sms": "Hi {{ citizen.name }}, your licence expires on "
                "{{ data.expires_on | fecha }}.",
                "email_subject": "Your licence expires on {{ data.expires_on | fecha }}",
                "email_text": "Hi {{ citizen.name }},\n\nRenew it at https://sede.dgt.es",
            },
        },
    }


def make_template(**kwargs: Any) -> Template:
    return Template.model_validate(template_body(**kwargs))


def rule_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "licencia-aviso",
        "on": "license.expiring",
        "channels": ["sms", "email"],
        "delivery": "all",
        "template": "licencia-renovacion",
        "expires_after": "P2D",
    }
    body.update(fields)
    return body


def make_rule(*, version: int = 1, **fields: Any) -> CompiledRule:
    return CompiledRule.build(Rule.model_validate(rule_body(**fields)), version)
