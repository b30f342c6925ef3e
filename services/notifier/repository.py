"""Queries on the notifier's tables; every function takes the session as a keyword."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from schemas.notifications import Channel, NotificationRequest, Status
from services.notifier.models import Attempt, Deferral, Notification, ProviderEvent

SENDING = "sending"
# The error code of a `sending` attempt whose answer was lost after the request went out.
IN_DOUBT = "in-doubt"
COUNTED = ("sending", "sent", "delivered")  # attempts that count against the daily SMS cap


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


def notification_row(request: NotificationRequest, now: datetime) -> dict[str, Any]:
    """The column values of a request taken on now, in `queued`."""
    return {
        "id": request.id,
        "event_source": request.event.source,
        "event_id": request.event.id,
        "event_type": request.event.type,
        "event_subject": request.event.subject,
        "rule_id": request.rule.id,
        "rule_version": request.rule.version,
        "citizen_id": request.citizen.id,
        "request": request.model_dump(mode="json"),
        "status": Status.QUEUED.value,
        "channel": None,
        "detail": None,
        "published_status": None,
        "created_at": now,
        "updated_at": now,
    }


def insert_notification(
    *, session: Session, request: NotificationRequest, now: datetime
) -> Notification:
    """Add the row in `queued`; the caller's commit fails if the id is already taken."""
    row = Notification(**notification_row(request, now))
    session.add(row)
    return row


def insert_notifications(
    *, session: Session, requests: Sequence[NotificationRequest], now: datetime
) -> None:
    """Add every row in `queued` in one statement; fails if any id is already taken."""
    if requests:
        session.execute(insert(Notification), [notification_row(r, now) for r in requests])


def chunks(values: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    """Bounded `IN (...)` lists."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def existing_ids(*, session: Session, notification_ids: Sequence[str]) -> set[str]:
    """Which of these notifications were taken on before."""
    found: set[str] = set()
    for chunk in chunks(notification_ids):
        found.update(session.scalars(select(Notification.id).where(Notification.id.in_(chunk))))
    return found


def sms_times_since(
    *, session: Session, citizen_ids: Sequence[str], since: datetime
) -> dict[str, list[datetime]]:
    """When each citizen's counted SMS attempts since `since` were made (for the daily cap)."""
    times: dict[str, list[datetime]] = {}
    for chunk in chunks(citizen_ids):
        query = (
            select(Notification.citizen_id, Attempt.at)
            .join(Notification, Notification.id == Attempt.notification_id)
            .where(
                Notification.citizen_id.in_(chunk),
                Attempt.channel == Channel.SMS.value,
                Attempt.status.in_(COUNTED),
                Attempt.at >= since,
            )
        )
        for citizen_id, at in session.execute(query):
            times.setdefault(citizen_id, []).append(utc(at))
    return times


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
) -> bool:
    """Close a `sending` attempt; False when something else (a reconciler) closed it first."""
    done = session.execute(
        update(Attempt)
        .where(Attempt.id == attempt_id, Attempt.status == SENDING)
        .values(
            status="sent" if sent else "failed",
            provider_reference=reference,
            error_code=error_code,
            error_detail=error_detail,
            at=now,
        )
    )
    return bool(getattr(done, "rowcount", 0))


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


def sending_attempts(*, session: Session, notification_id: str) -> list[Attempt]:
    return list(
        session.scalars(
            select(Attempt).where(
                Attempt.notification_id == notification_id, Attempt.status == SENDING
            )
        )
    )


def stale_sending(
    *,
    session: Session,
    before: datetime | None,
    doubted_before: datetime,
    after_id: int = 0,
    limit: int = 100,
) -> list[Attempt]:
    """Attempts left `sending` since before `before` (their process most likely died mid-call;
    None: none of those) or marked `IN_DOUBT` since before `doubted_before` (their answer was
    lost). Oldest first, one page of them from past `after_id`."""
    stale = and_(Attempt.error_code == IN_DOUBT, Attempt.at < doubted_before)
    if before is not None:
        stale = or_(Attempt.at < before, stale)
    return list(
        session.scalars(
            select(Attempt)
            .where(Attempt.status == SENDING, stale, Attempt.id > after_id)
            .order_by(Attempt.id)
            .limit(limit)
        )
    )


def sent_attempt_on(*, session: Session, notification_id: str, channel: Channel) -> Attempt | None:
    """The attempt that already got `notification_id` out on `channel`, if one did: `sent`,
    `delivered`, or `failed` after the provider accepted it (it has the provider's reference:
    that channel is spent, never called again for this notification)."""
    spent = (Attempt.status == "failed") & Attempt.provider_reference.is_not(None)
    return session.scalars(
        select(Attempt)
        .where(
            Attempt.notification_id == notification_id,
            Attempt.channel == channel.value,
            or_(Attempt.status.in_(("sent", "delivered")), spent),
        )
        .order_by(Attempt.id)
        .limit(1)
    ).first()


def channels_tried(*, session: Session, notification_id: str) -> set[Channel]:
    """The channels some attempt of the notification used (whatever came of it)."""
    query = select(Attempt.channel).where(Attempt.notification_id == notification_id).distinct()
    return {Channel(channel) for channel in session.scalars(query)}


def move_attempt(
    *,
    session: Session,
    attempt: Attempt,
    status: str,
    error_code: str | None = None,
    error_detail: str | None = None,
) -> bool:
    """Move the attempt from the status it was read in to `status` (compare-and-set);
    False when something else moved it first."""
    values: dict[str, Any] = {"status": status}
    if status == "failed":
        values |= {"error_code": error_code, "error_detail": error_detail}
    done = session.execute(
        update(Attempt)
        .where(Attempt.id == attempt.id, Attempt.status == attempt.status)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if not getattr(done, "rowcount", 0):
        return False
    for name, value in values.items():  # what the row now holds, without a second UPDATE
        set_committed_value(attempt, name, value)
    return True


def attempt_by_reference(*, session: Session, provider: str, reference: str) -> Attempt | None:
    return session.scalars(
        select(Attempt)
        .where(Attempt.provider == provider, Attempt.provider_reference == reference)
        .limit(1)
    ).one_or_none()


def latest_attempt_on(
    *, session: Session, notification_id: str, channel: Channel
) -> Attempt | None:
    return session.scalars(
        select(Attempt)
        .where(Attempt.notification_id == notification_id, Attempt.channel == channel.value)
        .order_by(Attempt.id.desc())
        .limit(1)
    ).one_or_none()


def count_sms_since(*, session: Session, citizen_id: str, since: datetime) -> int:
    """SMS attempts to the citizen since `since` that reached (or may have reached) them."""
    query = (
        select(func.count())
        .select_from(Attempt)
        .join(Notification, Notification.id == Attempt.notification_id)
        .where(
            Notification.citizen_id == citizen_id,
            Attempt.channel == Channel.SMS.value,
            Attempt.status.in_(COUNTED),
            Attempt.at >= since,
        )
    )
    return int(session.scalar(query) or 0)


def put_deferral(*, session: Session, notification_id: str, due_at: datetime, reason: str) -> None:
    """Store (or move) the time a deferred notification is due."""
    row = session.get(Deferral, notification_id)
    if row is None:
        session.add(
            Deferral(
                notification_id=notification_id,
                due_at=due_at,
                reason=reason,
                state="pending",
                claimed_at=None,
            )
        )
    else:
        row.due_at, row.reason, row.state, row.claimed_at = due_at, reason, "pending", None
    session.flush()


def get_deferral(*, session: Session, notification_id: str) -> Deferral | None:
    return session.get(Deferral, notification_id)


def delete_deferral(*, session: Session, notification_id: str) -> None:
    session.execute(delete(Deferral).where(Deferral.notification_id == notification_id))


def claim_due(
    *, session: Session, now: datetime, stale_before: datetime, limit: int = 50
) -> list[str]:
    """Claim deferrals due by `now` (and claims abandoned before `stale_before`); returns their
    notification ids. PostgreSQL skips rows another scheduler holds; SQLite has one writer."""
    due = or_(
        (Deferral.state == "pending") & (Deferral.due_at <= now),
        (Deferral.state == "claimed") & (Deferral.claimed_at < stale_before),
    )
    rows = list(
        session.scalars(
            select(Deferral)
            .where(due)
            .order_by(Deferral.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    for row in rows:
        row.state, row.claimed_at = "claimed", now
    session.flush()
    return [row.notification_id for row in rows]


def next_due(*, session: Session) -> datetime | None:
    value = session.scalar(select(func.min(Deferral.due_at)).where(Deferral.state == "pending"))
    return utc(value) if value is not None else None


def record_provider_event(*, session: Session, provider: str, event_id: str, now: datetime) -> bool:
    """Remember a provider webhook event; False when it was applied before (a replay)."""
    if session.get(ProviderEvent, (provider, event_id)) is not None:
        return False
    session.add(ProviderEvent(provider=provider, event_id=event_id, at=now))
    session.flush()
    return True


SessionFactory = sessionmaker[Session]
