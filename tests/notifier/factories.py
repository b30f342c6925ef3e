"""Plain keyword factories for the notifier's tests."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from schemas.events import Citizen, EventRef
from schemas.notifications import (
    Channel,
    Content,
    EmailContent,
    NotificationRequest,
    RuleRef,
    SmsContent,
)

_UNSET: Any = object()


def make_request(
    *,
    channels: tuple[str, ...] = ("sms", "email"),
    delivery: str = "first",
    phone: str | None = "+34600111222",
    email: str | None = "ana@example.es",
    sms: str | None = "Hola Ana, tu permiso caduca pronto",
    subject: str | None = "Tu permiso caduca",
    not_after: datetime | None = None,
    id: str | None = None,
    citizen_id: str = "ES-12345678Z",
) -> NotificationRequest:
    """A valid notification request; pass None to leave out a contact or a channel's content."""
    return NotificationRequest(
        id=id or str(uuid.uuid4()),
        event=EventRef(
            source="dgt",
            id=f"dgt-{uuid.uuid4().hex[:8]}",
            type="license.expiring",
            subject="license/B-12345678",
        ),
        rule=RuleRef(id="licencia-renovacion", version=1),
        citizen=Citizen(id=citizen_id, name="Ana", phone=phone, email=email),
        channels=[Channel(c) for c in channels],
        delivery=delivery,
        content=Content(
            sms=SmsContent(body=sms) if sms is not None else None,
            email=EmailContent(
                subject=subject, text="Renuévalo en la sede.", html="<p>Renuévalo en la sede.</p>"
            )
            if subject is not None
            else None,
        ),
        locale="es",
        not_after=not_after,
    )


def sms_body(request: NotificationRequest) -> str:
    assert request.content.sms is not None
    return request.content.sms.body


def email_subject(request: NotificationRequest) -> str:
    assert request.content.email is not None
    return request.content.email.subject
