"""Queries of the reminder timers and cancellations. Every function takes `session` as keyword.

Datetimes are always written in UTC: SQLite keeps them as text without an offset, so UTC
everywhere makes its comparisons (and PostgreSQL's) agree.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    ColumnElement,
    String,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from schemas.notifications import NotificationRequest
from services.rules.models import CancellationRow, RuleRow, RuleVersionRow, TimerRow
from services.rules.repository import utc

PENDING, FIRED, CANCELLED, EXPIRED = "pending", "fired", "cancelled", "expired"
FAILED = "failed"  # the broker refused its request for good (too large): reported, not retried
_CHUNK = 500  # ids a statement: well inside both databases' bound-parameter limits


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


def cancel_pending(
    rule_id: str,
    subject: str,
    source: str,
    *,
    by_event: str,
    now: datetime,
    session: Session,
    triggered_by: datetime | None = None,
    keep: Collection[str] = (),
) -> None:
    """Cancel the pending timers of a rule and subject, recording `by_event` as the cause;
    with `triggered_by`, only those whose trigger is not later; never the ids in `keep`."""
    query = update(TimerRow).where(_owner(rule_id, subject, source), TimerRow.state == PENDING)
    if triggered_by is not None:
        query = query.where(TimerRow.event_time <= as_utc(triggered_by))
    if keep:
        query = query.where(TimerRow.notification_id.not_in(list(keep)))
    session.execute(
        query.values(
            state=CANCELLED, cancelled_by=by_event, updated_at=as_utc(now)
        ).execution_options(synchronize_session=False)
    )


def cancelled_by(
    rule_id: str, subject: str, source: str, event_id: str, *, session: Session
) -> list[TimerRow]:
    """The timers of a rule and subject that the event `event_id` cancelled, now or before."""
    query = select(TimerRow).where(
        _owner(rule_id, subject, source),
        TimerRow.state == CANCELLED,
        TimerRow.cancelled_by == event_id,
    )
    query = query.order_by(TimerRow.due_at, TimerRow.notification_id)
    # The rows were just updated behind the session's back: read them as stored.
    return list(session.scalars(query.execution_options(populate_existing=True)))


def withdrawn_rules(rule_ids: Iterable[str], *, session: Session) -> set[str]:
    """Which of `rule_ids` were disabled or deleted: they have versions but are not live.

    An id the rules tables never knew (timers stored by hand) is not withdrawn.
    """
    wanted = set(rule_ids)
    if not wanted:
        return set()
    live = select(RuleRow.id).where(RuleRow.id == RuleVersionRow.id, RuleRow.enabled.is_(True))
    query = select(RuleVersionRow.id).where(RuleVersionRow.id.in_(wanted), ~live.exists())
    return set(session.scalars(query.distinct()))


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
    # The pending test is in SET, not WHERE: a WHERE on the state lets a planner without fresh
    # statistics pick the partial index of pending timers and scan all of them; by id alone,
    # each timer is one primary-key lookup.
    pending = TimerRow.state == PENDING
    session.execute(
        update(TimerRow)
        .where(_among(chosen, session))
        .values(
            state=case((pending, state), else_=TimerRow.state),
            updated_at=case((pending, as_utc(now)), else_=TimerRow.updated_at),
        )
        .execution_options(synchronize_session=False)
    )


def _among(ids: list[str], session: Session) -> ColumnElement[bool]:
    """`notification_id IN ids`. On PostgreSQL as `= ANY` of one array parameter: a statement
    over a round's 500 ids is then not rendered and bound as 500 parameters each time."""
    if session.get_bind().dialect.name == "postgresql":
        return TimerRow.notification_id == any_(bindparam("ids", ids, type_=ARRAY(String)))
    return TimerRow.notification_id.in_(ids)


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


def _pending_indexed() -> ColumnElement[bool]:
    """`state = 'pending'` written as a literal: the partial due-time index has that predicate,
    and SQLite and PostgreSQL use a partial index only when the query states it literally."""
    return TimerRow.state == literal_column(f"'{PENDING}'")


def _scan_in_order(session: Session) -> None:
    """On PostgreSQL, have this transaction read due timers in index order, stopping at the
    limit. Statistics lag behind a burst of due timers: estimating few, the planner would
    otherwise fetch and sort every due timer on each round (seconds with a large backlog)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off"))


@dataclass(frozen=True, slots=True)
class DueTimer:
    """What firing a timer needs, read without building an ORM row or parsing its payload."""

    notification_id: str
    rule_id: str
    rule_version: int
    due_at: datetime
    not_after: datetime | None
    citizen_id: str
    payload: str  # the stored notification request, as JSON text
    subject: str = ""

    def is_stale(self, now: datetime) -> bool:
        """Whether the timer's deadline (`not_after`) has passed."""
        return self.not_after is not None and as_utc(self.not_after) <= now


def claim_due(now: datetime, limit: int, *, session: Session) -> list[DueTimer]:
    """Up to `limit` pending timers due by `now`, oldest first, locked for this transaction.

    PostgreSQL skips rows another replica holds, so replicas share the due timers. The payload
    comes back as the JSON text stored, ready to publish.
    """
    query = (
        select(
            TimerRow.notification_id,
            TimerRow.rule_id,
            TimerRow.rule_version,
            TimerRow.due_at,
            TimerRow.not_after,
            TimerRow.payload[("citizen", "id")].as_string(),
            cast(TimerRow.payload, Text),
            TimerRow.subject,
        )
        .where(_pending_indexed(), TimerRow.due_at <= as_utc(now))
        .order_by(TimerRow.due_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    _scan_in_order(session)
    # Core execution: plain tuples, without the ORM's result processing of each row.
    return [DueTimer(*row) for row in session.connection().execute(query)]


def rows_of(ids: Sequence[str], *, session: Session) -> list[TimerRow]:
    """The full rows of timers this transaction already holds (claimed)."""
    if not ids:
        return []
    return list(session.scalars(select(TimerRow).where(_among(list(ids), session))))


def next_due(*, session: Session) -> datetime | None:
    """When the earliest pending timer is due (an index lookup on state and due time)."""
    query = select(TimerRow.due_at).where(_pending_indexed()).order_by(TimerRow.due_at).limit(1)
    _scan_in_order(session)
    due = session.scalar(query)
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


def pending_counts(*, session: Session, rule_id: str | None = None) -> dict[str, int]:
    """Pending timers per rule, in one grouped query reading the partial index of pending
    timers alone (it holds their rule); a rule with none is absent. With `rule_id`, that
    rule's count only."""
    # SQLite has no statistics: unless told, it picks the (rule, ...) index for its order and
    # reads every timer ever stored. PostgreSQL's planner picks the partial index by itself.
    hint = (
        " INDEXED BY ix_rules_timers_pending" if session.get_bind().dialect.name == "sqlite" else ""
    )
    one = " AND rule_id = :rule_id" if rule_id is not None else ""
    query = text(
        f"SELECT rule_id, count(*) FROM rules_timers{hint}"  # noqa: S608  # fixed fragments
        f" WHERE state = '{PENDING}'{one} GROUP BY rule_id"
    )
    rows = session.execute(query, {"rule_id": rule_id} if rule_id is not None else {})
    return {str(rule): int(count) for rule, count in rows}
