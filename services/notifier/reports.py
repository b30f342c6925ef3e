"""Applying what providers report after the send (delivered, failed, opt-outs) to our rows.

Tolerant of duplicates and of callbacks out of order: `delivered` is final for an attempt and
for its notification, and a report that changes nothing publishes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from common.kafka import Producer
from schemas.notifications import Channel, NotificationRequest, Status, StatusChange
from schemas.topics import Topics
from services.notifier import flows, repository
from services.notifier.models import Attempt, Notification
from services.notifier.publishing import status_message


@dataclass(frozen=True, slots=True)
class WebhookContext:
    """What the provider webhooks need, built in `main`."""

    sessions: repository.SessionFactory
    producer: Producer
    topics: Topics
    public_url: str
    clock: Callable[[], datetime]
    twilio_auth_token: str | None
    sendgrid_public_key: str | None

    def publish(self, changes: list[StatusChange]) -> None:
        """Publish and wait for the acks (callers do this before their commit)."""
        if changes:
            self.producer.publish(status_message(c, self.topics) for c in changes)


@dataclass(frozen=True, slots=True)
class Report:
    """One provider report about one attempt."""

    delivered: bool
    code: str | None = None
    reason: str | None = None


def attempt_transition(current: str, report: Report) -> str | None:
    """The attempt's new status, or None when the report changes nothing (pure)."""
    if current == "delivered":
        return None  # final: a late `failed`/`sent` never moves it back
    new = "delivered" if report.delivered else "failed"
    return None if new == current else new


def notification_transition(current: str, report: Report) -> Status | None:
    """The notification's new status: delivered wins over everything; failure only replaces
    `sent` (another channel may already have delivered it)."""
    if report.delivered:
        return None if current == Status.DELIVERED else Status.DELIVERED
    return Status.FAILED if current == Status.SENT else None


def find_attempt(
    *,
    session: Session,
    provider: str,
    reference: str | None,
    notification_id: str | None,
    channel: Channel,
) -> Attempt | None:
    """By the provider's reference, else the notification's latest attempt on `channel`."""
    if reference:
        found = repository.attempt_by_reference(
            session=session, provider=provider, reference=reference
        )
        if found is not None:
            return found
    if notification_id:
        return repository.latest_attempt_on(
            session=session, notification_id=notification_id, channel=channel
        )
    return None


def apply(
    *, session: Session, attempt: Attempt, report: Report, now: datetime
) -> StatusChange | None:
    """Update the attempt (and its notification); the status.v1 change, or None."""
    new = attempt_transition(attempt.status, report)
    if new is None:
        return None
    attempt.status = new
    if not report.delivered:
        attempt.error_code = report.code
        attempt.error_detail = report.reason
    row = session.get(Notification, attempt.notification_id)
    if row is None:
        return None
    channel = Channel(attempt.channel)
    status = notification_transition(row.status, report)
    if status is not None:
        row.status, row.updated_at = status.value, now
        row.detail = None if report.delivered else _detail(channel, report)
    session.flush()
    request = NotificationRequest.model_validate(row.request)
    return flows.status_change(
        request,
        Status.DELIVERED if report.delivered else Status.FAILED,
        at=now,
        channel=channel,
        detail=None if report.delivered else _detail(channel, report),
        provider_reference=attempt.provider_reference,
    )


def _detail(channel: Channel, report: Report) -> str:
    code = f" {report.code}" if report.code else ""
    return f"{channel.value}:{code} {report.reason or 'not delivered'}".replace(":  ", ": ")
