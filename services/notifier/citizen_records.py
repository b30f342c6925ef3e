"""citizens.v1: each citizen's preferred zone and locale, published for the rules service so it
plans reminders in the citizen's zone without reading our tables. Never an address: phones
and emails stay in the notifier."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from common.kafka import OutgoingMessage, Producer
from common.keyfeed import RecordPublisher
from schemas.citizens import CitizenRecord
from services.notifier.models import Preferences
from services.notifier.repository import utc

log = logging.getLogger(__name__)

# A transaction may commit a little after the `updated_at` it wrote (and replicas' clocks
# differ a little): each scan looks this far behind what it already published.
OVERLAP = timedelta(seconds=30)


def record_of(row: Preferences) -> CitizenRecord:
    """The citizens.v1 record of a directory row (zone and locale only)."""
    return CitizenRecord(
        citizen_id=row.citizen_id,
        timezone=row.timezone,
        locale=row.locale,
        updated_at=utc(row.updated_at),
    )


def changed_since(
    session: Session, after: tuple[datetime, str] | None, limit: int
) -> Sequence[Preferences]:
    """Up to `limit` rows after (updated_at, citizen_id) `after`, in that order."""
    query = select(Preferences).order_by(Preferences.updated_at, Preferences.citizen_id)
    if after is not None:
        moment, citizen_id = after
        query = query.where(
            or_(
                Preferences.updated_at > moment,
                and_(Preferences.updated_at == moment, Preferences.citizen_id > citizen_id),
            )
        )
    return session.scalars(query.limit(limit)).all()


class CitizenPublisher(RecordPublisher):
    """Publishes every citizen's record at start, then each changed one, found by reading the
    directory by `updated_at` every `interval_s` or at once when woken (a PUT through the
    API). Run in a `Worker`; a failed round is tried again from what the broker acknowledged.
    """

    noun = "citizen"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        producer: Producer,
        topic: str,
        *,
        bootstrap_servers: Sequence[str],
        interval_s: float = 5.0,
        batch: int = 1000,
    ) -> None:
        super().__init__(
            producer, topic, bootstrap_servers=bootstrap_servers, interval_s=interval_s
        )
        self._sessions = sessions
        self._batch = batch
        self._cursor: tuple[datetime, str] | None = None  # the last row acknowledged
        self._recent: dict[str, datetime] = {}  # published within OVERLAP of the cursor

    def publish_changes(self) -> int:
        """Publish the records changed since the last acknowledged round; how many."""
        total = 0
        after = self._rescan_from()
        while True:
            with self._sessions() as session:
                rows = changed_since(session, after, self._batch)
                records = [record_of(r) for r in rows]
            fresh = [r for r in records if self._recent.get(r.citizen_id) != r.updated_at]
            if fresh:
                self._producer.publish(
                    OutgoingMessage(
                        topic=self._topic, key=r.citizen_id, value=r.model_dump_json().encode()
                    )
                    for r in fresh
                )
                total += len(fresh)
            if records:
                after = (records[-1].updated_at, records[-1].citizen_id)
                self._acknowledged(records, after)
            if len(records) < self._batch:
                break
        if total:
            log.info("citizen records published", extra={"records": total})
        return total

    def _rescan_from(self) -> tuple[datetime, str] | None:
        if self._cursor is None:
            return None
        return (self._cursor[0] - OVERLAP, "")

    def _acknowledged(self, records: Sequence[CitizenRecord], cursor: tuple[datetime, str]) -> None:
        self._cursor = max(self._cursor, cursor) if self._cursor else cursor
        horizon = self._cursor[0] - OVERLAP
        self._recent.update((r.citizen_id, r.updated_at) for r in records)
        self._recent = {k: v for k, v in self._recent.items() if v >= horizon}
