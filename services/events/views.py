"""Request and response bodies of the events API (the CloudEvent itself lives in schemas/)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from services.events.flows import AGENCY_ID
from services.events.models import Event, Notification, StatusHistory


class AgencyIn(BaseModel):
    id: str = Field(pattern=AGENCY_ID.pattern, description="a slug: a-z, 0-9 and '-'")
    name: str = Field(min_length=1, max_length=256)


class AgencyOut(BaseModel):
    id: str
    name: str
    created_at: datetime


class NewKey(BaseModel):
    """A freshly created key: `key` is shown this once and stored only hashed."""

    key: str
    prefix: str
    agency_id: str
    created_at: datetime


class KeyInfo(BaseModel):
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class KeyList(BaseModel):
    keys: list[KeyInfo]


class Accepted(BaseModel):
    accepted: int
    duplicates: int
    ids: list[str]


class HistoryEntry(BaseModel):
    status: str
    at: datetime
    detail: str | None = None
    channel: str | None = None


class EventKeyOut(BaseModel):
    source: str
    id: str


class NotificationOut(BaseModel):
    id: str
    event: EventKeyOut
    subject: str
    rule: str | None
    channel: str | None
    status: str
    scheduled_for: datetime | None
    history: list[HistoryEntry]


class EventOut(BaseModel):
    """An accepted event as the agency sent it (with `time` defaulted) and its notifications."""

    event: dict[str, Any]
    received_at: datetime
    notifications: list[NotificationOut]


class Timeline(BaseModel):
    subject: str
    notifications: list[NotificationOut]


def notification_views(
    notifications: Sequence[Notification],
    histories: Mapping[str, Sequence[StatusHistory]],
) -> list[NotificationOut]:
    return [
        NotificationOut(
            id=n.id,
            event=EventKeyOut(source=n.event_source, id=n.event_id),
            subject=n.subject,
            rule=n.rule,
            channel=n.channel,
            status=n.status,
            scheduled_for=n.scheduled_for,
            history=[
                HistoryEntry(status=h.status, at=h.at, detail=h.detail, channel=h.channel)
                for h in histories.get(n.id, ())
            ],
        )
        for n in notifications
    ]


def event_view(event: Event, notifications: list[NotificationOut]) -> EventOut:
    return EventOut(event=event.payload, received_at=event.received_at, notifications=notifications)
