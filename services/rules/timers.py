"""Queries of the reminder timers and cancellations. Every function takes `session` as keyword.

Datetimes are always written in UTC: SQLite keeps them as text without an offset, so UTC
everywhere makes its comparisons (and PostgreSQL's) agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, func, select, text, update
from sqlalchemy.orm import Session

from schemas.notifications import NotificationRequest
from services.rules.models import CancellationRow, TimerRow
from services.rules.repository import utc

PENDING, FIRED, CANCELLED, EXPIRED = "pending", "fired", "cancelled", "expired"


def as_utc(moment: datetime) -> datetime:
    return utc(moment).astimezone(UTC)


def timer_row(
    request: NotificationRequest, *, subject: str, event_time: datetime, now: datetime
) -> TimerRow:
    """A pending timer holding `request` until its `scheduled_for`."""
    assert request.scheduled_for is not None
    not_after = as_utc(request.not_after) if request.not_after is not None else None
    return TimerRow(
        notification_id=request.id,
        due_at=as_utc(request.scheduled_for),
        state=PENDING,
        rule_id=request.rule.id,
        rule_version=request.rule.version,
        subject=subject,
        source=request.event.source,
        event_id=request.event.id,
        event_time=as_utc(event_time),
        step=request.step,
        payload=request.model_dump(mode="json"),
        not_after=not_after,
        created_at=as_utc(now),
        updated_at=as_utc(now),
    )


def _owner(rule_id: str, subject: str, source: str) -> ColumnElement[bool]:
    return and_(TimerRow.rule_id == rule_id, TimerRow.subject == subject, TimerRow.source == source)


def pending_for(
    rule_id: str,
    subject: str,
    source: str,
    *,
    session: Session,
    triggered_by: datetime | None = None,
) -> list[TimerRow]:
    """The pending timers of a rule and subject, locked until the transaction ends; with
    `triggered_by`, only those whose trigger event is not later than it."""
    query = select(TimerRow).where(_owner(rule_id, subject, source), TimerRow.state == PENDING)
    if triggered_by is not None:
        query = query.where(TimerRow.event_time <= as_utc(triggered_by))
    return list(session.scalars(query.with_for_update()))


def latest_trigger(rule_id: str, subject: str, source: str, *, session: Session) -> datetime | None:
    """The time of the newest event that stored timers for a rule and subject (any state)."""
    latest = session.scalar(
        select(func.max(TimerRow.event_time)).where(_owner(rule_id, subject, source))
    )
    return as_utc(latest) if latest is not None else None


def add_absent(rows: Sequence[TimerRow], *, session: Session) -> list[TimerRow]:
    """Store the timers not stored yet; returns every row for `rows`' ids, stored or found."""
    if not rows:
        return []
    ids = [row.notification_id for row in rows]
    found = {
        row.notification_id: row
        for row in session.scalars(select(TimerRow).where(TimerRow.notification_id.in_(ids)))
    }
    for row in rows:
        if row.notification_id not in found:
            session.add(row)
            found[row.notification_id] = row
    session.flush()
    return [found[i] for i in ids]


def set_state(ids: Iterable[str], state: str, *, now: datetime, session: Session) -> None:
    """Move pending timers to `state` (timers that already left `pending` stay as they are)."""
    chosen = list(ids)
    if not chosen:
        return
    session.execute(
        update(TimerRow)
        .where(TimerRow.notification_id.in_(chosen), TimerRow.state == PENDING)
        .values(state=state, updated_at=as_utc(now))
        .execution_options(synchronize_session=False)
    )


def latest_cancellation(
    rule_id: str, subject: str, source: str, *, session: Session
) -> datetime | None:
    row = session.get(CancellationRow, (rule_id, subject, source))
    return as_utc(row.cancelled_at) if row is not None else None


def record_cancellation(
    rule_id: str, subject: str, source: str, *, at: datetime, event_id: str, session: Session
) -> None:
    """Remember that `rule_id`'s reminders for `subject` were cancelled by an event at `at`."""
    row = session.get(CancellationRow, (rule_id, subject, source), with_for_update=True)
    if row is None:
        session.add(
            CancellationRow(
                rule_id=rule_id,
                subject=subject,
                source=source,
                cancelled_at=as_utc(at),
                event_id=event_id,
            )
        )
    elif as_utc(at) > as_utc(row.cancelled_at):
        row.cancelled_at, row.event_id = as_utc(at), event_id
    session.flush()


def lock_for_claim(session: Session) -> None:
    """On SQLite, take the database's write lock now, so two claimers never read the same due
    timers (PostgreSQL uses row locks with SKIP LOCKED instead)."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("UPDATE rules_timers SET state = state WHERE notification_id = ''"))


def claim_due(now: datetime, limit: int, *, session: Session) -> list[TimerRow]:
    """Up to `limit` pending timers due by `now`, oldest first, locked for this transaction.

    PostgreSQL skips rows another replica holds, so replicas share the due timers.
    """
    query = (
        select(TimerRow)
        .where(TimerRow.state == PENDING, TimerRow.due_at <= as_utc(now))
        .order_by(TimerRow.due_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def next_due(*, session: Session) -> datetime | None:
    """When the earliest pending timer is due (an index lookup on state and due time)."""
    due = session.scalar(select(func.min(TimerRow.due_at)).where(TimerRow.state == PENDING))
    return as_utc(due) if due is not None else None


def pending_of_subject(
    subject: str, rule_ids: Sequence[str], *, session: Session
) -> list[TimerRow]:
    """The pending timers of `subject` for any of `rule_ids` (for dry runs; not locked)."""
    if not rule_ids:
        return []
    query = select(TimerRow).where(
        TimerRow.subject == subject, TimerRow.rule_id.in_(rule_ids), TimerRow.state == PENDING
    )
    return list(session.scalars(query.order_by(TimerRow.due_at)))
