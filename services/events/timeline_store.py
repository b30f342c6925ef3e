"""Batch writes of the status.v1 and decisions.v1 consumers: a poll's records in a few
statements (bulk inserts and updates), never an ORM object per record.

Every function takes the session as a keyword and writes in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from schemas.decisions import Decision as DecisionIn
from schemas.notifications import Status, StatusChange
from services.events import flows
from services.events.flows import EventKey
from services.events.models import Decision, Notification, StatusHistory

_CHUNK = 500  # ids a statement: well inside both databases' bound-parameter limits

_HISTORY = cast(Table, StatusHistory.__table__)
_NOTIFICATIONS = cast(Table, Notification.__table__)
_DECISIONS = cast(Table, Decision.__table__)

HistoryKey = tuple[str, str, datetime]

# A redelivered change hits the unique (notification, status, at) and is skipped; RETURNING
# tells which rows are new, so idempotency costs no read.
_HISTORY_INSERT = {
    name: dialect.insert(_HISTORY)
    .on_conflict_do_nothing(
        index_elements=[_HISTORY.c.notification_id, _HISTORY.c.status, _HISTORY.c.at]
    )
    .returning(_HISTORY.c.notification_id, _HISTORY.c.status, _HISTORY.c.at)
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}
_FOLDED = ("rule", "channel", "status", "status_at", "first_at", "scheduled_for", "updated_at")
_NOTIFICATION_UPDATE = (
    update(_NOTIFICATIONS)
    .where(_NOTIFICATIONS.c.id == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}") for name in _FOLDED})
)


def _decision_upsert(dialect: Any) -> Any:
    insert = dialect.insert(_DECISIONS)
    return insert.on_conflict_do_update(
        index_elements=[_DECISIONS.c.event_source, _DECISIONS.c.event_id],
        set_={
            "at": insert.excluded.at,
            "rules": insert.excluded.rules,
            "updated_at": insert.excluded.updated_at,
        },
        where=insert.excluded.at >= _DECISIONS.c.at,
    )


_DECISION_UPSERT = {"sqlite": _decision_upsert(sqlite), "postgresql": _decision_upsert(postgresql)}


def _history_key(change: StatusChange) -> HistoryKey:
    return change.notification_id, change.status.value, change.at


def _channel(change: StatusChange) -> str | None:
    return change.channel.value if change.channel is not None else None


def _insert_history(*, session: Session, changes: Sequence[StatusChange]) -> list[StatusChange]:
    """Insert the changes' history rows; returns the changes that were new, in batch order."""
    first: dict[HistoryKey, StatusChange] = {}
    for change in changes:
        first.setdefault(_history_key(change), change)
    connection = session.connection()
    rows = [
        {
            "notification_id": change.notification_id,
            "status": change.status.value,
            "at": change.at,
            "detail": change.detail,
            "channel": _channel(change),
        }
        for change in first.values()
    ]
    result = connection.execute(_HISTORY_INSERT[connection.dialect.name], rows)
    new = {(row.notification_id, row.status, row.at) for row in result}
    return [change for key, change in first.items() if key in new]


def _stored_notifications(*, session: Session, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = list(dict.fromkeys(ids))
    columns = [_NOTIFICATIONS.c.id, *(_NOTIFICATIONS.c[name] for name in _FOLDED)]
    connection = session.connection()
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), _CHUNK):
        query = select(*columns).where(_NOTIFICATIONS.c.id.in_(wanted[start : start + _CHUNK]))
        found.update((row.id, dict(row._mapping)) for row in connection.execute(query))
    return found


def _new_notification(change: StatusChange, now: datetime) -> dict[str, Any]:
    return {
        "id": change.notification_id,
        "event_source": change.event.source,
        "event_id": change.event.id,
        "subject": change.event.subject,
        "rule": change.rule,
        "channel": _channel(change),
        "status": change.status.value,
        "status_at": change.at,
        "first_at": change.at,
        "scheduled_for": change.scheduled_for,
        "updated_at": now,
    }


def _fold(current: dict[str, Any], change: StatusChange, now: datetime) -> None:
    """Apply one change to a notification's columns (out-of-order tolerant)."""
    current["first_at"] = min(current["first_at"], change.at)
    current["rule"] = current["rule"] or change.rule
    latest = flows.supersedes(
        change.status, change.at, Status(current["status"]), current["status_at"]
    )
    if latest:
        current["status"], current["status_at"] = change.status.value, change.at
        current["channel"] = _channel(change) or current["channel"]
    if change.scheduled_for is not None and (latest or current["scheduled_for"] is None):
        current["scheduled_for"] = change.scheduled_for
    current["updated_at"] = now


def record_statuses(
    *, session: Session, changes: Sequence[StatusChange], now: datetime
) -> list[StatusChange]:
    """Apply a batch of status changes idempotently; returns those not recorded before, in
    order. Each notification's row is read once and written once, whatever the batch holds."""
    if not changes:
        return []
    recorded = _insert_history(session=session, changes=changes)
    if not recorded:
        return []
    stored = _stored_notifications(
        session=session, ids=(change.notification_id for change in recorded)
    )
    created: dict[str, dict[str, Any]] = {}
    for change in recorded:
        nid = change.notification_id
        current = stored.get(nid) or created.get(nid)
        if current is None:
            created[nid] = _new_notification(change, now)
        else:
            _fold(current, change, now)
    connection = session.connection()
    if created:
        connection.execute(_NOTIFICATIONS.insert(), list(created.values()))
    touched = {change.notification_id for change in recorded} - created.keys()
    if touched:
        connection.execute(
            _NOTIFICATION_UPDATE,
            [{f"b_{name}": value for name, value in stored[nid].items()} for nid in touched],
        )
    return recorded


def record_decisions(*, session: Session, decisions: Iterable[DecisionIn], now: datetime) -> int:
    """Store each event's decision trace, replacing an older one (a redelivery or a
    reprocessing decides again, later); returns how many events' traces were stored."""
    latest: dict[EventKey, DecisionIn] = {}
    for decision in decisions:
        key = (decision.event.source, decision.event.id)
        if key not in latest or decision.at >= latest[key].at:
            latest[key] = decision
    if not latest:
        return 0
    rows = [
        {
            "event_source": source,
            "event_id": event_id,
            "at": decision.at,
            "rules": [entry.model_dump(mode="json") for entry in decision.rules],
            "updated_at": now,
        }
        for (source, event_id), decision in latest.items()
    ]
    connection = session.connection()
    connection.execute(_DECISION_UPSERT[connection.dialect.name], rows)
    return len(latest)
