"""Content retention: a timer that fired, was cancelled or expired longer ago than the retention
period loses its content - the rendered texts and everything the event said about the citizen
but their id. Its id, rule, state, times and event reference stay (a redelivered cancelling
event still reports the timers it cancelled)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from services.rules.models import TimerRow
from services.rules.timers import PENDING, as_utc

log = logging.getLogger(__name__)

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


class ContentPurger:
    """Every `interval_s`, purges the content of timers that left `pending` longer than
    `retention` ago; run in a `Worker`."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        retention: timedelta,
        interval_s: float,
        batch: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._retention = retention
        self._interval_s = interval_s
        self._batch = batch
        self._clock = clock
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Block until `stop()`; a failed round is tried again after `interval_s`."""
        while not self._stop.is_set():
            try:
                self.purge()
            except Exception:
                log.exception("timer content purge failed; will try again")
            self._stop.wait(self._interval_s)

    def purge(self) -> int:
        """Purge everything past retention, in batches; how many timers."""
        total = 0
        while not self._stop.is_set():
            now = self._clock()
            with self._sessions.begin() as session:
                purged = purge_batch(
                    session, before=now - self._retention, now=now, limit=self._batch
                )
            total += purged
            if purged < self._batch:
                break
        if total:
            log.info("timer contents purged", extra={"purged": total})
        return total
