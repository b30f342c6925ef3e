"""Queries of agency callbacks and their delivery queue (`events_callback_outbox`); every
function takes the session as a keyword."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from schemas.notifications import StatusChange
from services.events.callbacks.decisions import ACTIVE, Health, agency_of, body_of
from services.events.models import Callback, CallbackDelivery


def get(*, session: Session, agency_id: str) -> Callback | None:
    return session.get(Callback, agency_id)


def health_of(callback: Callback) -> Health:
    return Health(
        state=callback.state,
        failures=callback.failures,
        failing_since=callback.failing_since,
        last_error=callback.last_error,
        last_success_at=callback.last_success_at,
        suspended_at=callback.suspended_at,
    )


def apply_health(callback: Callback, health: Health, now: datetime) -> None:
    callback.state = health.state
    callback.failures = health.failures
    callback.failing_since = health.failing_since
    callback.last_error = health.last_error
    callback.last_success_at = health.last_success_at
    callback.suspended_at = health.suspended_at
    callback.updated_at = now


def put(*, session: Session, agency_id: str, url: str, secret: str, now: datetime) -> Callback:
    """Set the agency's endpoint; a suspended one is resumed and its parked deliveries are due."""
    callback = session.get(Callback, agency_id)
    if callback is None:
        callback = Callback(
            agency_id=agency_id, url=url, secret=secret, state=ACTIVE, failures=0, updated_at=now
        )
        session.add(callback)
        return callback
    # The queued deliveries before the endpoint's row: the sender locks them in that order too, so
    # a PUT racing an attempt's outcome waits instead of deadlocking (PostgreSQL).
    session.execute(
        update(CallbackDelivery)
        .where(CallbackDelivery.agency_id == agency_id)
        .values(next_attempt_at=now, attempts=0)
    )
    callback.url, callback.secret = url, secret
    callback.state, callback.failures = ACTIVE, 0
    callback.failing_since = callback.suspended_at = None
    callback.updated_at = now
    return callback


def remove(*, session: Session, agency_id: str) -> bool:
    """Forget the endpoint and whatever was still waiting for it."""
    session.execute(delete(CallbackDelivery).where(CallbackDelivery.agency_id == agency_id))
    result = session.execute(delete(Callback).where(Callback.agency_id == agency_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def pending_count(*, session: Session, agency_id: str) -> int:
    query = select(func.count()).where(CallbackDelivery.agency_id == agency_id)
    return int(session.scalar(query) or 0)


def enqueue(*, session: Session, changes: Iterable[StatusChange], now: datetime) -> int:
    """Queue the changes whose agency has an active callback, in the caller's transaction."""
    by_agency = [(agency_of(change.event.source), change) for change in changes]
    agencies = {agency for agency, _ in by_agency}
    if not agencies:
        return 0
    active = set(
        session.scalars(
            select(Callback.agency_id).where(
                Callback.agency_id.in_(agencies), Callback.state == ACTIVE
            )
        )
    )
    rows = [
        {
            "agency_id": agency,
            "notification_id": change.notification_id,
            "body": body_of(change),
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for agency, change in by_agency
        if agency in active
    ]
    if rows:
        # One executemany, not an ORM object a row: this runs once per consumed batch.
        session.execute(insert(CallbackDelivery), rows)
    return len(rows)


@dataclass(frozen=True, slots=True)
class Due:
    """A delivery ready to be attempted, with where and how to sign it."""

    id: int
    agency_id: str
    body: str
    attempts: int
    url: str
    secret: str


def due(*, session: Session, now: datetime, limit: int) -> list[Due]:
    """Deliveries whose time has come, of active endpoints, oldest first."""
    query = (
        select(CallbackDelivery, Callback.url, Callback.secret)
        .join(Callback, Callback.agency_id == CallbackDelivery.agency_id)
        .where(CallbackDelivery.next_attempt_at <= now, Callback.state == ACTIVE)
        .order_by(CallbackDelivery.next_attempt_at, CallbackDelivery.id)
        .limit(limit)
    )
    return [
        Due(d.id, d.agency_id, d.body, d.attempts, url, secret)
        for d, url, secret in session.execute(query)
    ]


def claim(*, session: Session, item: Due, lease_until: datetime) -> bool:
    """Take a delivery for one attempt (other replicas skip it until the lease ends)."""
    result = session.execute(
        update(CallbackDelivery)
        .where(CallbackDelivery.id == item.id, CallbackDelivery.attempts == item.attempts)
        .values(attempts=item.attempts + 1, next_attempt_at=lease_until)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def finish(*, session: Session, delivery_id: int) -> None:
    session.execute(delete(CallbackDelivery).where(CallbackDelivery.id == delivery_id))


def reschedule(*, session: Session, delivery_id: int, at: datetime, error: str) -> None:
    session.execute(
        update(CallbackDelivery)
        .where(CallbackDelivery.id == delivery_id)
        .values(next_attempt_at=at, last_error=error)
    )


def lease(now: datetime, timeout_s: float) -> datetime:
    """How long a claimed delivery stays invisible: the request timeout and a margin."""
    return now + timedelta(seconds=timeout_s + 30)
