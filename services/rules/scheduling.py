"""The rule engine's timer steps for one event: cancel, then schedule or re-time.

Run inside the event's database transaction; they return the status changes to publish once
it committed. Race-free cancellation: a cancelling event is remembered per rule, subject and
source (`rules_cancellations`), so a trigger that is processed after it but is not newer than
it schedules nothing; and a trigger older than the timers already stored for the same rule and
subject (a late, out-of-order event) changes nothing either.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

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


def cancel(
    compiled: CompiledRule, event: CloudEvent, *, now: datetime, session: Session
) -> list[StatusChange]:
    """Cancel what `compiled` has pending for the event's subject, and remember the cancel."""
    rule_id, moment = compiled.rule.id, event.time or now
    timers.record_cancellation(
        rule_id, event.subject, event.source, at=moment, event_id=event.id, session=session
    )
    rows = timers.pending_for(
        rule_id, event.subject, event.source, session=session, triggered_by=moment
    )
    timers.set_state([r.notification_id for r in rows], timers.CANCELLED, now=now, session=session)
    detail = f"cancelled by {event.type} (event {event.id})"
    if rows:
        log.info(
            "reminders cancelled",
            extra={"rule": rule_id, "event_id": event.id, "count": len(rows)},
        )
    return [status_of(r, Status.CANCELLED, at=now, detail=detail) for r in rows]


def _superseded(plan: ReminderPlan, event: CloudEvent, *, now: datetime, session: Session) -> str:
    """Why this trigger must not touch the timers, or "" when it may."""
    rule_id, moment = plan.compiled.rule.id, event.time or now
    cut = timers.latest_cancellation(rule_id, event.subject, event.source, session=session)
    if cut is not None and moment <= cut:
        return "a cancelling event at or after it was already processed"
    latest = timers.latest_trigger(rule_id, event.subject, event.source, session=session)
    if latest is not None and moment < latest:
        return "a newer event already scheduled reminders for this subject"
    return ""


def schedule(
    plan: ReminderPlan, event: CloudEvent, *, now: datetime, session: Session
) -> list[StatusChange]:
    """Store the plan's future reminders, replacing the subject's other pending ones.

    Reprocessing the same event finds the same ids and adds nothing; its `scheduled` statuses
    are repeated with their original time, so timelines record them once.
    """
    rule_id = plan.compiled.rule.id
    reason = _superseded(plan, event, now=now, session=session)
    if reason:
        log.info(
            "trigger schedules nothing",
            extra={"rule": rule_id, "event_id": event.id, "reason": reason},
        )
        return []
    pending = timers.pending_for(rule_id, event.subject, event.source, session=session)
    wanted = {r.request.id: r for r in plan.ahead}
    replaced = [row for row in pending if row.notification_id not in wanted]
    timers.set_state(
        [r.notification_id for r in replaced], timers.CANCELLED, now=now, session=session
    )
    moment = event.time or now
    rows = timers.add_absent(
        [
            timers.timer_row(r.request, subject=event.subject, event_time=moment, now=now)
            for r in wanted.values()
        ],
        session=session,
    )
    detail = f"replaced by event {event.id}"
    changes = [status_of(r, Status.CANCELLED, at=now, detail=detail) for r in replaced]
    changes += [
        status_of(r, Status.SCHEDULED, at=r.created_at) for r in rows if r.state == timers.PENDING
    ]
    return changes
