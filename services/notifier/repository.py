"""Queries on the notifier's tables; every function takes the session as a keyword."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from schemas.notifications import NotificationRequest, Status
from services.notifier.models import Attempt, Notification


def utc(value: datetime) -> datetime:
    """SQLite gives naive datetimes back; every stored time is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def get_notification(
    *, session: Session, notification_id: str, with_attempts: bool = False
) -> Notification | None:
    query = select(Notification).where(Notification.id == notification_id)
    if with_attempts:
        query = query.options(selectinload(Notification.attempts))
    return session.scalars(query).one_or_none()


def insert_notification(
    *, session: Session, request: NotificationRequest, now: datetime
) -> Notification:
    """Add the row in `queued`; the caller's commit fails if the id is already taken."""
    row = Notification(
        id=request.id,
        event_source=request.event.source,
        event_id=request.event.id,
        event_type=request.event.type,
        event_subject=request.event.subject,
        rule_id=request.rule.id,
        rule_version=request.rule.version,
        citizen_id=request.citizen.id,
        request=request.model_dump(mode="json"),
        status=Status.QUEUED.value,
        channel=None,
        detail=None,
        published_status=None,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    return row


def set_status(
    *,
    session: Session,
    notification_id: str,
    status: Status,
    now: datetime,
    channel: str | None = None,
    detail: str | None = None,
) -> None:
    session.execute(
        update(Notification)
        .where(Notification.id == notification_id)
        .values(status=status.value, channel=channel, detail=detail, updated_at=now)
    )


def add_attempt(
    *, session: Session, notification_id: str, channel: str, provider: str, now: datetime
) -> Attempt:
    """Record `sending` before the provider call; the row's id is known after flush."""
    attempt = Attempt(
        notification_id=notification_id,
        channel=channel,
        provider=provider,
        status="sending",
        at=now,
    )
    session.add(attempt)
    session.flush()
    return attempt


def finish_attempt(
    *,
    session: Session,
    attempt_id: int,
    sent: bool,
    now: datetime,
    reference: str | None = None,
    error_code: str | None = None,
    error_detail: str | None = None,
) -> None:
    session.execute(
        update(Attempt)
        .where(Attempt.id == attempt_id)
        .values(
            status="sent" if sent else "failed",
            provider_reference=reference,
            error_code=error_code,
            error_detail=error_detail,
            at=now,
        )
    )


def count_attempts(*, session: Session, notification_id: str) -> int:
    query = (
        select(func.count()).select_from(Attempt).where(Attempt.notification_id == notification_id)
    )
    return int(session.scalar(query) or 0)


def sent_attempts(*, session: Session, notification_id: str) -> list[Attempt]:
    return list(
        session.scalars(
            select(Attempt)
            .where(
                Attempt.notification_id == notification_id,
                Attempt.status == "sent",
            )
            .order_by(Attempt.id)
        )
    )


def mark_published(*, session: Session, notification_ids: Iterable[str]) -> None:
    """status.v1 acknowledged every change so far of these notifications."""
    ids = list(notification_ids)
    if ids:
        session.execute(
            update(Notification)
            .where(Notification.id.in_(ids))
            .values(published_status=Notification.status)
        )


SessionFactory = sessionmaker[Session]
