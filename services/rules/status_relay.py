"""The status relay: status changes committed with the change they report, then published.

When a rule is disabled or deleted, each background chunk that cancels its pending timers
(`withdrawals`) writes their `cancelled` statuses here in the same transaction; the relay (a
`Worker` thread) publishes them and deletes them. A crash after the commit leaves the rows for
the next round, so no status is lost; a crash after the publish and before the delete repeats
it with the same `at`, which the timelines record once. Replicas share the rows like the
scheduler shares timers (`SKIP LOCKED` on PostgreSQL, the database write lock on SQLite).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session, sessionmaker

from common.kafka import OutgoingMessage, Producer
from common.runtime import Loop
from schemas.notifications import StatusChange
from schemas.topics import Topics
from services.rules.models import StatusOutboxRow
from services.rules.timers import as_utc

log = logging.getLogger(__name__)


def add(changes: Iterable[StatusChange], *, now: datetime, session: Session) -> int:
    """Queue status changes in the caller's transaction; returns how many."""
    rows = [
        StatusOutboxRow(
            notification_id=change.notification_id,
            value=change.model_dump_json(),
            created_at=as_utc(now),
        )
        for change in changes
    ]
    session.add_all(rows)
    return len(rows)


def _claim(limit: int, *, session: Session) -> list[StatusOutboxRow]:
    if session.get_bind().dialect.name == "sqlite":
        # Take the write lock first, so two relays never read the same rows.
        session.execute(text("DELETE FROM rules_status_outbox WHERE seq < 0"))
    query = select(StatusOutboxRow).order_by(StatusOutboxRow.seq).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


class StatusRelay(Loop):
    """Publishes the relay table's rows (`rules_status_outbox`), then deletes them; `run()`
    until `stop()`."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        producer: Producer,
        topics: Topics,
        batch_size: int = 500,
        interval_s: float = 1.0,
    ) -> None:
        super().__init__(interval_s=interval_s)
        self._sessions = sessions
        self._producer = producer
        self._topics = topics
        self._batch_size = batch_size

    def poke(self) -> None:
        """Rows were committed: relay them now rather than at the next interval."""
        super().poke()

    def round(self) -> bool:
        """`tick()`; after a full batch, go again at once: more may be waiting."""
        return self.tick() >= self._batch_size

    def round_failed(self, error: Exception) -> None:
        log.warning("status relay round failed; will retry", extra={"error": repr(error)})

    def tick(self) -> int:
        """Publish and delete one batch of rows; returns how many."""
        with self._sessions() as session, session.begin():
            rows = _claim(self._batch_size, session=session)
            if not rows:
                return 0
            self._producer.publish(
                OutgoingMessage(
                    topic=self._topics.status, key=row.notification_id, value=row.value.encode()
                )
                for row in rows
            )
            session.execute(
                delete(StatusOutboxRow).where(StatusOutboxRow.seq.in_([r.seq for r in rows]))
            )
        log.info("statuses relayed", extra={"count": len(rows)})
        return len(rows)
