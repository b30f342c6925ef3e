"""Queries of the events service; every function takes the session as a keyword."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from services.events.flows import EventKey
from services.events.models import (
    ACCEPTED,
    PENDING,
    Agency,
    AgencyKey,
    Callback,
    Event,
    Notification,
    StatusHistory,
)

# --- agencies and keys ---------------------------------------------------------------------


def get_agency(*, session: Session, agency_id: str) -> Agency | None:
    return session.get(Agency, agency_id)


def list_agencies(*, session: Session, agency_id: str | None = None) -> Sequence[Agency]:
    """Every agency by id, or only `agency_id`'s."""
    query = select(Agency).order_by(Agency.id)
    if agency_id is not None:
        query = query.where(Agency.id == agency_id)
    return session.scalars(query).all()


def live_key_counts(*, session: Session) -> dict[str, int]:
    """Live (not revoked) keys per agency, in one grouped query; agencies with none absent."""
    query = (
        select(AgencyKey.agency_id, func.count())
        .where(AgencyKey.revoked_at.is_(None))
        .group_by(AgencyKey.agency_id)
    )
    return {str(agency): int(count) for agency, count in session.execute(query)}


def callback_states(*, session: Session) -> dict[str, str]:
    """Each agency's callback state (active or suspended); agencies without one absent."""
    rows = session.execute(select(Callback.agency_id, Callback.state))
    return {str(agency): str(state) for agency, state in rows}


def add_agency(*, session: Session, agency_id: str, name: str, now: datetime) -> Agency:
    agency = Agency(id=agency_id, name=name, created_at=now)
    session.add(agency)
    return agency


def add_key(
    *, session: Session, agency_id: str, key_hash: str, prefix: str, now: datetime
) -> AgencyKey:
    key = AgencyKey(agency_id=agency_id, key_hash=key_hash, prefix=prefix, created_at=now)
    session.add(key)
    return key


def key_exists(*, session: Session, key_hash: str) -> bool:
    return session.scalar(select(AgencyKey.id).where(AgencyKey.key_hash == key_hash)) is not None


def list_keys(*, session: Session, agency_id: str) -> Sequence[AgencyKey]:
    query = select(AgencyKey).where(AgencyKey.agency_id == agency_id).order_by(AgencyKey.id)
    return session.scalars(query).all()


def revoke_keys(*, session: Session, agency_id: str, prefix: str, now: datetime) -> int:
    """Revoke the agency's live keys with that prefix; returns how many matched."""
    result = session.execute(
        update(AgencyKey)
        .where(
            AgencyKey.agency_id == agency_id,
            AgencyKey.prefix == prefix,
            AgencyKey.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def agency_for_key(*, session: Session, key_hash: str) -> str | None:
    """The agency id of the live (not revoked) key with that hash."""
    query = select(AgencyKey.agency_id).where(
        AgencyKey.key_hash == key_hash, AgencyKey.revoked_at.is_(None)
    )
    return session.scalar(query)


# --- events ---------------------------------------------------------------------------------

_CHUNK = 500  # ids a statement: well inside both databases' bound-parameter limits

# Statements on events by key, built once (the intake's hottest ones, its insert, lookup and
# `accepted` update, are in `pending_sql`). `source = ? AND id IN (...)` uses the primary key
# on both databases (SQLite scans the table for `(source, id) IN (...)`).
_EVENTS = cast(Table, Event.__table__)
_BY_SOURCE = and_(
    _EVENTS.c.source == bindparam("key_source"),
    _EVENTS.c.id.in_(bindparam("key_ids", expanding=True)),
)
_ACCEPT = update(_EVENTS).where(_BY_SOURCE).values(state=ACCEPTED)


def _by_source(keys: Iterable[EventKey]) -> Iterable[dict[str, Any]]:
    """Parameters of `_BY_SOURCE` selecting `keys`: one set per source and chunk of ids."""
    ids: dict[str, list[str]] = {}
    for source, event_id in keys:
        ids.setdefault(source, []).append(event_id)
    for source, wanted in ids.items():
        for start in range(0, len(wanted), _CHUNK):
            yield {"key_source": source, "key_ids": wanted[start : start + _CHUNK]}


def delete_pending(
    *, session: Session, keys: Sequence[EventKey], received_before: datetime | None = None
) -> int:
    """Delete the `pending` rows among `keys` (only those older than `received_before` if given)."""
    query = delete(_EVENTS).where(_BY_SOURCE, _EVENTS.c.state == PENDING)
    if received_before is not None:
        query = query.where(_EVENTS.c.received_at < received_before)
    connection = session.connection()
    return sum(connection.execute(query, params).rowcount for params in _by_source(keys))


def mark_accepted(*, session: Session, keys: Sequence[EventKey]) -> None:
    connection = session.connection()
    for params in _by_source(keys):
        connection.execute(_ACCEPT, params)


def find_events(
    *, session: Session, event_id: str, source: str | None, agency_id: str | None
) -> Sequence[Event]:
    """Accepted events with that id; limited to one source and/or to an agency's sources.
    Each comes with its decision trace loaded (`Event.decision`)."""
    query = select(Event).where(Event.id == event_id, Event.state == ACCEPTED)
    query = query.options(selectinload(Event.decision))
    if source is not None:
        query = query.where(Event.source == source)
    if agency_id is not None:
        query = query.where(
            or_(
                Event.source == agency_id, Event.source.startswith(f"{agency_id}/", autoescape=True)
            )
        )
    return session.scalars(query.limit(2)).all()


def events_to_purge(*, session: Session, before: datetime, limit: int) -> Sequence[Event]:
    """Accepted events received before `before` whose content is still kept, oldest first."""
    query = (
        select(Event)
        .where(Event.received_at < before, Event.purged_at.is_(None), Event.state == ACCEPTED)
        .order_by(Event.received_at)
        .limit(limit)
    )
    return session.scalars(query).all()


# --- notifications and their history --------------------------------------------------------


def notifications_of_event(
    *, session: Session, source: str, event_id: str
) -> Sequence[Notification]:
    query = (
        select(Notification)
        .where(Notification.event_source == source, Notification.event_id == event_id)
        .order_by(Notification.first_at, Notification.id)
    )
    return session.scalars(query).all()


def notifications_of_subject(
    *, session: Session, subject: str, agency_id: str | None
) -> Sequence[Notification]:
    query = select(Notification).where(Notification.subject == subject)
    if agency_id is not None:
        query = query.where(
            or_(
                Notification.event_source == agency_id,
                Notification.event_source.startswith(f"{agency_id}/", autoescape=True),
            )
        )
    return session.scalars(query.order_by(Notification.first_at, Notification.id)).all()


def histories(
    *, session: Session, notification_ids: Sequence[str]
) -> dict[str, list[StatusHistory]]:
    """Each notification's history, oldest first."""
    result: dict[str, list[StatusHistory]] = {nid: [] for nid in notification_ids}
    if not notification_ids:
        return result
    query = (
        select(StatusHistory)
        .where(StatusHistory.notification_id.in_(list(notification_ids)))
        .order_by(StatusHistory.at, StatusHistory.id)
    )
    for entry in session.scalars(query):
        result[entry.notification_id].append(entry)
    return result
