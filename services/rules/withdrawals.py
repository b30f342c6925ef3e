"""Cancelling a withdrawn rule's pending timers in the background, in bounded chunks.

Disabling or deleting a rule only records a job row (`rules_withdrawals`) with the version
that withdrew it; the admin request returns at once. A `Withdrawer` (a `Worker` thread in each
replica) then cancels the rule's pending timers of older versions, `chunk` at a time: each
chunk moves its timers to `cancelled` and queues their `cancelled` statuses for the status
relay in one transaction, and advances the job's cursor (`resume_after`) in that same
transaction, so a crash resumes after the last committed chunk, never repeating a status.
Replicas share the jobs: the job row is locked for the chunk (`SKIP LOCKED` on PostgreSQL,
the database write lock on SQLite).

Until the job is done, the scheduler's fire-time check (`cuts`) cancels any such timer that
comes due, even if the rule was enabled again in between: a timer stored under a version older
than its rule's latest withdrawal never fires.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy import ColumnElement, delete, func, literal, select, text, tuple_
from sqlalchemy.orm import Session, sessionmaker

from common.runtime import Loop
from schemas.notifications import Status
from services.rules import status_relay, timers
from services.rules.models import TimerRow, WithdrawalRow
from services.rules.timer_steps import status_of

log = logging.getLogger(__name__)


class WithdrawalMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.left = Gauge(
            "avisa_rules_withdrawal_timers_left",
            "Pending timers of disabled or deleted rules still to cancel (the same figure from "
            "every replica: aggregate with max)",
            registry=registry,
        )


def record(rule_id: str, version: int, *, detail: str, now: datetime, session: Session) -> None:
    """Queue the cancellation of `rule_id`'s timers older than `version`, in the caller's
    transaction (the one that disabled or deleted the rule)."""
    session.add(
        WithdrawalRow(
            rule_id=rule_id,
            version=version,
            detail=detail,
            at=timers.as_utc(now),
            resume_after="",
        )
    )


def cuts(rule_ids: Iterable[str], *, session: Session) -> dict[str, int]:
    """For each of `rule_ids` ever withdrawn, its latest withdrawing version: its timers stored
    under an older version must not fire."""
    wanted = set(rule_ids)
    if not wanted:
        return {}
    query = (
        select(WithdrawalRow.rule_id, func.max(WithdrawalRow.version))
        .where(WithdrawalRow.rule_id.in_(wanted))
        .group_by(WithdrawalRow.rule_id)
    )
    return {rule_id: int(version) for rule_id, version in session.execute(query)}


def _claim(session: Session) -> WithdrawalRow | None:
    """The oldest open job, locked for this transaction (skipping those others hold)."""
    if session.get_bind().dialect.name == "sqlite":
        # Take the write lock first, so two workers never work on the same job.
        session.execute(text("UPDATE rules_withdrawals SET seq = seq WHERE seq < 0"))
    query = (
        select(WithdrawalRow)
        .where(WithdrawalRow.done_at.is_(None))
        .order_by(WithdrawalRow.seq)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.scalars(query).first()


def _owned(job: WithdrawalRow) -> list[ColumnElement[bool]]:
    return [
        TimerRow.rule_id == job.rule_id,
        TimerRow.state == timers.PENDING,
        TimerRow.rule_version < job.version,
    ]


def _after_cursor(job: WithdrawalRow) -> list[ColumnElement[bool]]:
    """Timers past the job's cursor in (subject, source, id) order: each chunk walks on along
    the (rule, subject, source, state) index instead of from its start again."""
    if not job.resume_after:
        return []
    subject, source, notification_id = json.loads(job.resume_after)
    # The pair bound is what both databases can seek on in the index; the triple is exact.
    return [
        tuple_(TimerRow.subject, TimerRow.source) >= tuple_(literal(subject), literal(source)),
        tuple_(TimerRow.subject, TimerRow.source, TimerRow.notification_id)
        > tuple_(literal(subject), literal(source), literal(notification_id)),
    ]


def _count(job: WithdrawalRow, session: Session) -> int:
    query = select(func.count()).select_from(TimerRow).where(*_owned(job), *_after_cursor(job))
    return int(session.scalar(query) or 0)


def _next_chunk(job: WithdrawalRow, limit: int, session: Session) -> list[TimerRow]:
    query = (
        select(TimerRow)
        .where(*_owned(job), *_after_cursor(job))
        .order_by(TimerRow.subject, TimerRow.source, TimerRow.notification_id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Waits for a scheduler round holding one of them (it skips ours, so no cycle); a
        # timer it fired meanwhile no longer matches once the lock is granted.
        query = query.with_for_update()
    return list(session.scalars(query))


def cancel_chunk(limit: int, *, now: datetime, session: Session) -> tuple[int, bool]:
    """One chunk of the oldest open job, in the caller's transaction: how many timers it
    cancelled, and whether there was a job to work on."""
    job = _claim(session)
    if job is None:
        return 0, False
    if job.remaining is None:
        job.remaining = _count(job, session)
    rows = _next_chunk(job, limit, session)
    ids = [row.notification_id for row in rows]
    timers.set_state(ids, timers.CANCELLED, now=now, session=session)
    at = timers.as_utc(job.at)
    status_relay.add(
        [status_of(row, Status.CANCELLED, at=at, detail=job.detail) for row in rows],
        now=now,
        session=session,
    )
    job.remaining = max(0, job.remaining - len(rows))
    if rows:
        last = rows[-1]
        job.resume_after = json.dumps([last.subject, last.source, last.notification_id])
    if len(rows) < limit:
        job.done_at, job.remaining = timers.as_utc(now), 0
        _drop_superseded(job, session)
        log.info("rule withdrawal done", extra={"rule": job.rule_id, "version": job.version})
    return len(rows), True


def _drop_superseded(job: WithdrawalRow, session: Session) -> None:
    """Finished jobs of the same rule before `job` serve nothing now: `cuts` reads only a
    rule's latest withdrawal, and `job` cancelled every timer theirs did. Without this a rule
    disabled and enabled again and again would keep a row for every time."""
    session.execute(
        delete(WithdrawalRow).where(
            WithdrawalRow.rule_id == job.rule_id,
            WithdrawalRow.seq < job.seq,
            WithdrawalRow.version <= job.version,
            WithdrawalRow.done_at.is_not(None),
        )
    )


def timers_left(*, session: Session) -> int:
    """Timers the open jobs still have to cancel (counted when each job started)."""
    query = select(func.coalesce(func.sum(WithdrawalRow.remaining), 0))
    return int(session.scalar(query.where(WithdrawalRow.done_at.is_(None))) or 0)


class Withdrawer(Loop):
    """Works through the open withdrawal jobs a chunk a transaction; `run()` until `stop()`."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        metrics: WithdrawalMetrics,
        chunk: int = 1000,
        interval_s: float = 1.0,
        on_chunk: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(interval_s=interval_s)
        self._sessions = sessions
        self._metrics = metrics
        self._chunk = chunk
        self._on_chunk = on_chunk
        self._clock = clock

    def poke(self) -> None:
        """A rule was withdrawn: start on it now rather than at the next interval."""
        super().poke()

    def round(self) -> bool:
        """`tick()`; after a job's chunk, go again at once: the job may have more, or another
        job may be open."""
        return self.tick()

    def round_failed(self, error: Exception) -> None:
        log.warning("withdrawal round failed; will retry", extra={"error": repr(error)})

    def tick(self) -> bool:
        """One chunk of one job, committed; whether there was a job to work on."""
        with self._sessions() as session:
            with session.begin():
                cancelled, worked = cancel_chunk(self._chunk, now=self._clock(), session=session)
            with session.begin():
                self._metrics.left.set(timers_left(session=session))
        if cancelled:
            self._on_chunk()  # the status relay has statuses to publish
        return worked
