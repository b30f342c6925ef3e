"""Applying what providers report after the send (delivered, failed, opt-outs) to our rows.

Tolerant of duplicates and of callbacks out of order: `delivered` is final for an attempt and
for its notification, each attempt moves by compare-and-set (two copies of one report apply
once), and a report that changes nothing publishes nothing. A failure of a message the
provider had accepted falls through to the next channel (`fallback`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from common.kafka import OutgoingMessage, Producer
from schemas.notifications import Channel, NotificationRequest, Status, StatusChange
from schemas.topics import Topics
from services.notifier import flows, repository
from services.notifier.delivery import fallback
from services.notifier.delivery.admission import Defaults
from services.notifier.delivery.publishing import dead_letter, status_message
from services.notifier.models import Attempt, Notification


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
    defaults: Defaults = field(default_factory=Defaults)
    # How long a report waits for the send it is about to be recorded (see `settle`).
    settle_timeout_s: float = 5.0
    # How far a SendGrid signature's timestamp may be from now (`webhooks.check_freshness`).
    sendgrid_timestamp_tolerance_s: float = 600.0

    def publish(self, applied: Applied) -> None:
        """Publish and wait for the acks (callers do this before their commit)."""
        records = messages(applied, self.topics)
        if records:
            self.producer.publish(records)


@dataclass(frozen=True, slots=True)
class Report:
    """One provider report about one attempt; `fallback` when a failure should make the
    next channel carry the message (not for a spam report: the citizen got it)."""

    delivered: bool
    code: str | None = None
    reason: str | None = None
    fallback: bool = True


@dataclass(slots=True)
class Applied:
    """What applying reports produced: status changes, and notifications that failed for
    good (each with why) to park on the dead-letter topic."""

    changes: list[StatusChange] = field(default_factory=list)
    failed: list[tuple[NotificationRequest, str]] = field(default_factory=list)

    def add(self, other: Applied) -> None:
        self.changes += other.changes
        self.failed += other.failed


def attempt_transition(current: str, report: Report) -> str | None:
    """The attempt's new status, or None when the report changes nothing (pure)."""
    if current in ("delivered", repository.SENDING):
        return None  # delivered is final; a send still in flight is settled first
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


def in_flight(session: Session, attempt: Attempt | None) -> str | None:
    """Why a report about `attempt` must wait: its send is not recorded yet (`sending`), or
    its notification's delivery has not finished (`delivering`); None when it can apply."""
    if attempt is None:
        return None
    if attempt.status == repository.SENDING:
        return "sending"
    row = session.get(Notification, attempt.notification_id)
    if row is not None and row.status == Status.QUEUED and attempt.status == "sent":
        return "delivering"
    return None


def settle(context: WebhookContext, find: Callable[[Session], Attempt | None]) -> None:
    """Wait (bounded) until the report's attempt and notification are recorded: a provider
    may call back before our own commit. Past the bound the report goes on: one about a send
    still unrecorded is parked by the caller (`parked.park`, applied once the send is
    resolved), one about a delivery still running applies to the attempt alone."""
    deadline = time.monotonic() + context.settle_timeout_s
    while True:
        with context.sessions() as session:
            waiting = in_flight(session, find(session))
        if waiting is None or time.monotonic() >= deadline:
            return
        time.sleep(0.05)


def apply(
    *, session: Session, attempt: Attempt, report: Report, now: datetime, defaults: Defaults
) -> Applied:
    """Update the attempt (and its notification); the changes to publish."""
    new = attempt_transition(attempt.status, report)
    if new is None:
        return Applied()
    code, reason = (None, None) if report.delivered else (report.code, report.reason)
    moved = repository.move_attempt(
        session=session, attempt=attempt, status=new, error_code=code, error_detail=reason
    )
    row = session.get(Notification, attempt.notification_id)
    if not moved or row is None:
        return Applied()  # another copy of this report got there first
    request = NotificationRequest.model_validate(row.request)
    channel = Channel(attempt.channel)
    status = notification_transition(row.status, report)
    if status is Status.DELIVERED:
        row.status, row.detail, row.updated_at = status.value, None, now
        change = flows.status_change(
            request,
            status,
            at=now,
            channel=channel,
            provider_reference=attempt.provider_reference,
        )
        return Applied([change])
    if status is None:
        return Applied()  # the notification already delivered elsewhere, or still going
    return _failed(session, request, row, attempt, report, now=now, defaults=defaults)


def _failed(
    session: Session,
    request: NotificationRequest,
    row: Notification,
    attempt: Attempt,
    report: Report,
    *,
    now: datetime,
    defaults: Defaults,
) -> Applied:
    """A sent message failed: the next channel when `first` leaves one, else `failed`."""
    channel = Channel(attempt.channel)
    detail = _detail(channel, report)
    left = (
        fallback.channels_left(session=session, request=request, defaults=defaults)
        # A purged notification has no texts left to send on another channel.
        if request.delivery == "first" and report.fallback and row.purged_at is None
        else ()
    )
    if left:
        detail = fallback.schedule(session=session, row=row, failed=detail, to=left, now=now)
        status = Status.QUEUED
    else:
        row.status, row.detail, row.updated_at = Status.FAILED.value, detail, now
        status = Status.FAILED
    session.flush()
    change = flows.status_change(
        request,
        status,
        at=now,
        channel=channel,
        detail=detail,
        provider_reference=attempt.provider_reference,
    )
    return Applied([change], [] if left else [(request, detail)])


def _detail(channel: Channel, report: Report) -> str:
    code = f" {report.code}" if report.code else ""
    return f"{channel.value}:{code} {report.reason or 'not delivered'}".replace(":  ", ": ")


def messages(applied: Applied, topics: Topics) -> list[OutgoingMessage]:
    """The status.v1 and dead-letter records of `applied`."""
    out = [status_message(c, topics) for c in applied.changes]
    return out + [dead_letter(r, why, topics) for r, why in applied.failed]
