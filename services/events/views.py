"""Request and response bodies of the events API (the CloudEvent itself lives in schemas/)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import inspect

from schemas.decisions import RuleDecision
from services.events.flows import AGENCY_ID
from services.events.models import Decision, Event, Notification, StatusHistory


class AgencyIn(BaseModel):
    id: str = Field(pattern=AGENCY_ID.pattern, description="a slug: a-z, 0-9 and '-'")
    name: str = Field(min_length=1, max_length=256)


class AgencyOut(BaseModel):
    id: str
    name: str
    created_at: datetime


class AgencyList(BaseModel):
    items: list[AgencyOut]


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


class TraceEntry(BaseModel):
    """One decision about the event, in time order: what was scheduled, cancelled, sent..."""

    at: datetime
    notification_id: str
    rule: str | None
    channel: str | None
    status: str
    reason: str | None = None


class EventOut(BaseModel):
    """An accepted event as the agency sent it (with `time` defaulted) and its notifications.

    After the retention period `event` keeps only its envelope (no `data`) and
    `content_purged_at` says when; `notifications`, `trace` and `decisions` are kept.
    """

    event: dict[str, Any]
    received_at: datetime
    content_purged_at: datetime | None = None
    notifications: list[NotificationOut]
    trace: list[TraceEntry]
    decided_at: datetime | None = Field(
        default=None, description="when the rule engine evaluated the event (null: not yet)"
    )
    decisions: list[RuleDecision] = Field(
        default_factory=list,
        description="each rule whose event type matched: whether it matched and why not, "
        "the notifications it planned and the reminders it cancelled",
    )


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


def trace_of(notifications: Sequence[NotificationOut]) -> list[TraceEntry]:
    """Every status change of the event's notifications, oldest first."""
    entries = [
        TraceEntry(
            at=h.at,
            notification_id=n.id,
            rule=n.rule,
            channel=h.channel or n.channel,
            status=h.status,
            reason=h.detail,
        )
        for n in notifications
        for h in n.history
    ]
    return sorted(entries, key=lambda e: (e.at, e.notification_id))


def event_view(event: Event, notifications: list[NotificationOut]) -> EventOut:
    decision = _decision(event)
    return EventOut(
        event=event.payload,
        received_at=event.received_at,
        content_purged_at=event.purged_at,
        notifications=notifications,
        trace=trace_of(notifications),
        decided_at=decision.at if decision is not None else None,
        decisions=[RuleDecision.model_validate(r) for r in decision.rules] if decision else [],
    )


def _decision(event: Event) -> Decision | None:
    """The event's decision trace, when the query loaded it (`repository.find_events` does)."""
    if "decision" in inspect(event).unloaded:
        return None
    return event.decision
