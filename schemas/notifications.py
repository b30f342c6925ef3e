"""Notification requests (rules → notifier) and status changes (every service → status.v1)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from schemas.events import Citizen, EventRef

NOTIFICATION_NAMESPACE = uuid.UUID("6f1c1f0e-3a55-4c1e-9a51-6a7c1b5e2d10")

# What `{{ preferences_url }}` renders to in the rules service; the notifier replaces it with
# the citizen's signed page link at send time (the token is the notifier's). As long as a
# real link (GSM-7 characters only), so a template preview counts the SMS segments it costs.
PREFERENCES_URL_PLACEHOLDER = "https://avisa.invalid/preferences/" + "p" * 86


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"


class Status(StrEnum):
    """A notification's statuses, as timelines show them (CONTRACT.md)."""

    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    QUEUED = "queued"
    DEFERRED = "deferred"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


class RuleRef(BaseModel):
    id: str
    version: int


class SmsContent(BaseModel):
    body: str


class EmailContent(BaseModel):
    subject: str
    text: str
    html: str


class Content(BaseModel):
    """What to say, already rendered in the citizen's locale, per channel."""

    sms: SmsContent | None = None
    email: EmailContent | None = None


class NotificationRequest(BaseModel):
    """A decision of the rules service that the notifier must carry out (notifications.v1)."""

    id: str
    event: EventRef
    rule: RuleRef
    citizen: Citizen
    channels: list[Channel] = Field(min_length=1)
    delivery: Literal["first", "all"] = "first"
    content: Content
    locale: str
    critical: bool = False
    not_after: datetime | None = None
    scheduled_for: datetime | None = None
    step: str = "now"
    # The rule's topic (a slug) and its label per locale: the citizen may opt out of a topic.
    topic: str | None = None
    topic_labels: dict[str, str] = Field(default_factory=dict)


class StatusChange(BaseModel):
    """One change of a notification's status (status.v1, keyed by notification id)."""

    notification_id: str
    event: EventRef
    rule: str | None = None
    status: Status
    channel: Channel | None = None
    at: datetime
    detail: str | None = None
    provider_reference: str | None = None
    scheduled_for: datetime | None = None


def notification_id(
    *, rule_id: str, rule_version: int, source: str, event_id: str, step: str
) -> str:
    """The deterministic id of one notification: the same inputs always give the same id.

    `step` names the reminder step ("now" for immediate rules, the offset for reminders), so
    reprocessing an event never creates a second notification.
    """
    name = "\x1f".join((rule_id, str(rule_version), source, event_id, step))
    return str(uuid.uuid5(NOTIFICATION_NAMESPACE, name))
