"""Content retention: a timer that fired, was cancelled or expired longer ago than the retention
period loses its content - the rendered texts and everything the event said about the citizen
but their id. Its id, rule, state, times and event reference stay (a redelivered cancelling
event still reports the timers it cancelled)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common import retention
from services.rules.models import TimerRow
from services.rules.timers import PENDING, as_utc

PURGED = "purged_at"  # the key a purged payload carries (no column: the timers table is hot)
KEPT = ("id", "event", "rule", "channels", "delivery", "locale", "critical", "not_after")
KEPT_TOO = ("scheduled_for", "step")


def purged_payload(payload: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    """The stored request without content: no texts, the citizen's id only."""
    kept = {k: payload[k] for k in (*KEPT, *KEPT_TOO) if k in payload}
    citizen = payload.get("citizen") or {}
    return kept | {
        "citizen": {"id": citizen.get("id", "")},
        "content": {},
        PURGED: as_utc(now).isoformat(),
    }


def to_purge(session: Session, *, before: datetime, limit: int) -> list[TimerRow]:
    """Unpurged timers out of `pending` since before `before`."""
    query = (
        select(TimerRow)
        .where(
            TimerRow.state != PENDING,
            TimerRow.updated_at < as_utc(before),
            TimerRow.payload[PURGED].as_string().is_(None),
        )
        .limit(limit)
    )
    return list(session.scalars(query))


def purge_batch(session: Session, *, before: datetime, now: datetime, limit: int) -> int:
    """Purge up to `limit` timers in the caller's transaction; how many."""
    rows = to_purge(session, before=before, limit=limit)
    for row in rows:
        row.payload = purged_payload(row.payload, now=now)
    return len(rows)


class ContentPurger(retention.ContentPurger):
    """Every `interval_s`, purges the content of timers that left `pending` longer than
    `retention` ago; run in a `Worker`."""

    noun = "timer"

    def purge_batch(self, session: Session, *, before: datetime, now: datetime, limit: int) -> int:
        return purge_batch(session, before=before, now=now, limit=limit)
