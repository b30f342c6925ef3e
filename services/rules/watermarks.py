"""How far the rule engine processed `events.v1`, per partition: written by the consumer loop
after its commits, read by the scheduler before it fires (every replica shares the table).

A cancel answered 202 sits in `events.v1` until the rule engine processes it; a reminder due
meanwhile would go out although the citizen already acted. So a timer due at T for a subject
fires only once the watermark of the subject's partition (the partition the producer chose:
murmur2 of the subject) reached T: every event accepted before T on it is processed. The
watermark is the broker timestamp of the last record processed, or, when the consumer had no
lag (its position was the log end offset), the time it looked at the log end. Until then the
timer waits: late, never stale (its `not_after` still bounds it).

The times compared come from different hosts (the events service stamps the record, the
rule engine reads the log end, the scheduler reads its clock): they are assumed synchronised
(NTP); a skew of s widens the window a cancel can lose by s. With no rule engine consumer
running, nothing is processed, so no reminder fires: they wait for one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from common.consumer import PartitionProgress
from common.kafka import murmur2
from services.rules.models import WatermarkRow
from services.rules.timers import as_utc as utc

log = logging.getLogger(__name__)


def partition_of(subject: str, partitions: int) -> int:
    """The partition the producer puts `subject`'s events on (KeyPartitioner's choice)."""
    return (murmur2(subject.encode()) & 0x7FFFFFFF) % partitions


class WatermarkWriter:
    """A `ProgressSink` for `ConsumerLoop`: stores each partition's progress, never moving a
    watermark back (a replica that lost the partition may still report an older one)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._clock = clock

    def record(self, progress: Sequence[PartitionProgress]) -> None:
        if not progress:
            return
        now = utc(self._clock())
        topics = {mark.topic for mark in progress}
        with self._sessions() as session, session.begin():
            query = select(WatermarkRow).where(WatermarkRow.topic.in_(topics))
            rows = {(row.topic, row.partition): row for row in session.scalars(query)}
            for mark in progress:
                row = rows.get((mark.topic, mark.partition))
                until = utc(mark.processed_until)
                if row is None:
                    session.add(
                        WatermarkRow(
                            topic=mark.topic,
                            partition=mark.partition,
                            partitions=mark.partitions,
                            processed_until=until,
                            lag=mark.lag,
                            updated_at=now,
                        )
                    )
                    continue
                if until > utc(row.processed_until):
                    row.processed_until = until
                row.lag, row.partitions, row.updated_at = mark.lag, mark.partitions, now


@dataclass(frozen=True, slots=True)
class Watermarks:
    """One round's view of the watermarks of a topic: read once, checked per timer in memory."""

    until: dict[int, datetime]
    partitions: int

    def allows(self, subject: str, due_at: datetime) -> bool:
        """Whether everything accepted before `due_at` on `subject`'s partition is processed."""
        if self.partitions <= 0:
            return False
        mark = self.until.get(partition_of(subject, self.partitions))
        return mark is not None and mark >= utc(due_at)

    def lowest(self) -> datetime | None:
        """The earliest watermark over every partition (None while one was never processed)."""
        if self.partitions <= 0 or len(self.until) < self.partitions:
            return None
        return min(self.until.values())

    def highest(self) -> datetime | None:
        return max(self.until.values(), default=None)


def read(topic: str, *, session: Session) -> Watermarks:
    """The watermarks of `topic` (one row per partition: a primary-key range read)."""
    rows = session.scalars(select(WatermarkRow).where(WatermarkRow.topic == topic)).all()
    partitions = max((row.partitions for row in rows), default=0)
    return Watermarks(
        until={row.partition: utc(row.processed_until) for row in rows}, partitions=partitions
    )
