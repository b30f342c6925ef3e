"""The rule engine's timer steps for one event: cancel, then schedule or re-time.

Run inside the event's database transaction; they return the status changes to publish once
it committed. Race-free cancellation: a cancelling event is remembered per rule, subject and
source (`rules_cancellations`), so a trigger that is processed after it but is not newer than
it schedules nothing; and a trigger older than the timers already stored for the same rule and
subject (a late, out-of-order event) changes nothing either.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from schemas.decisions import Reason
from schemas.events import CloudEvent, EventRef
from schemas.notifications import Status, StatusChange
from services.rules import timers
from services.rules.flows import CompiledRule
from services.rules.models import TimerRow
from services.rules.reminders import ReminderPlan

log = logging.getLogger(__name__)


def status_of(
    row: TimerRow, status: Status, *, at: datetime, detail: str | None = None
) -> StatusChange:
    """A status change about a stored timer, for the timelines (`status.v1`)."""
    event = row.payload["event"]
    return StatusChange(
        notification_id=row.notification_id,
        event=EventRef.model_validate(event),
        rule=row.rule_id,
        status=status,
        at=timers.as_utc(at),
        detail=detail,
        scheduled_for=timers.as_utc(row.due_at),
    )


@dataclass(frozen=True, slots=True)
class TimerOutcome:
    """What one rule's timer step did for an event: the status changes to publish, the timers
    it scheduled and cancelled, and why it scheduled nothing (when it did not)."""

    changes: list[StatusChange] = field(default_factory=list)
    scheduled: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    reason: Reason | None = None
    detail: str | None = None


def _cancelled(rows: list[TimerRow], detail: str) -> list[StatusChange]:
    # `at` is the stored cancel time, so a reprocessed event repeats these changes exactly
    # and the timelines record them once.
    return [status_of(r, Status.CANCELLED, at=r.updated_at, detail=detail) for r in rows]


def cancel(
    compiled: CompiledRule, event: CloudEvent, *, now: datetime, session: Session
) -> TimerOutcome:
    """Cancel what `compiled` has pending for the event's subject, and remember the cancel.

    Also reports the timers this same event cancelled before (a redelivery after a crash
    that came between the commit and the publish), so their statuses are never lost.
    """
    rule_id, moment = compiled.rule.id, event.time or now
    timers.record_cancellation(
        rule_id, event.subject, event.source, at=moment, event_id=event.id, session=session
    )
    timers.cancel_pending(
        rule_id,
        event.subject,
        event.source,
        by_event=event.id,
        now=now,
        session=session,
        triggered_by=moment,
    )
    rows = timers.cancelled_by(rule_id, event.subject, event.source, event.id, session=session)
    if rows:
        log.info(
            "reminders cancelled",
            extra={"rule": rule_id, "event_id": event.id, "count": len(rows)},
        )
    detail = f"cancelled by {event.type} (event {event.id})"
    return TimerOutcome(
        changes=_cancelled(rows, detail), cancelled=[r.notification_id for r in rows]
    )


def _superseded(
    plan: ReminderPlan, event: CloudEvent, *, now: datetime, session: Session
) -> Reason | None:
    """Why this trigger must not touch the timers, or None when it may."""
    rule_id, moment = plan.compiled.rule.id, event.time or now
    cut = timers.latest_cancellation(rule_id, event.subject, event.source, session=session)
    if cut is not None and moment <= cut:
        return Reason.CANCELLED_BEFORE_TRIGGER
    latest = timers.latest_trigger(rule_id, event.subject, event.source, session=session)
    if latest is not None and moment < latest:
        return Reason.SUPERSEDED
    return None


WHY = {
    Reason.CANCELLED_BEFORE_TRIGGER: "a cancelling event at or after it was already processed",
    Reason.SUPERSEDED: "a newer event already scheduled reminders for this subject",
}


def schedule(
    plan: ReminderPlan, event: CloudEvent, *, now: datetime, session: Session
) -> TimerOutcome:
    """Store the plan's future reminders, replacing the subject's other pending ones.

    Reprocessing the same event finds the same ids and adds nothing; its `scheduled` and
    `cancelled` statuses are repeated with their original times, so timelines record them once.
    """
    rule_id = plan.compiled.rule.id
    reason = _superseded(plan, event, now=now, session=session)
    if reason is not None:
        log.info(
            "trigger schedules nothing",
            extra={"rule": rule_id, "event_id": event.id, "reason": WHY[reason]},
        )
        return TimerOutcome(reason=reason, detail=WHY[reason])
    wanted = {r.request.id: r for r in plan.ahead}
    timers.cancel_pending(
        rule_id,
        event.subject,
        event.source,
        by_event=event.id,
        now=now,
        session=session,
        keep=wanted.keys(),
    )
    moment = event.time or now
    rows = timers.add_absent(
        [
            timers.timer_row(r.request, subject=event.subject, event_time=moment, now=now)
            for r in wanted.values()
        ],
        session=session,
    )
    replaced = timers.cancelled_by(rule_id, event.subject, event.source, event.id, session=session)
    changes = _cancelled(replaced, f"replaced by event {event.id}")
    changes += [status_of(r, Status.SCHEDULED, at=r.created_at) for r in rows]
    return TimerOutcome(
        changes=changes,
        scheduled=[r.notification_id for r in rows],
        cancelled=[r.notification_id for r in replaced],
    )
