"""Content retention: a notification that reached a final state longer ago than the retention
period loses its content - the rendered texts, the citizen's phone, email and anything else
the event said about them, and the providers' error texts (they may quote an address). Ids,
statuses, times, attempts, provider references and error codes stay."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from common import retention
from schemas.notifications import Status
from services.notifier.models import Attempt, Notification
from services.notifier.repository import SENDING

# Nothing sends these again: a late provider report may still move `sent` on, never resend.
FINAL = (Status.SENT, Status.DELIVERED, Status.FAILED, Status.SUPPRESSED, Status.CANCELLED)
KEPT = ("id", "event", "rule", "channels", "delivery", "locale", "critical", "not_after")
KEPT_TOO = ("scheduled_for", "step")


def purged_request(request: dict[str, Any]) -> dict[str, Any]:
    """The stored request without content: still a valid `NotificationRequest` (no texts, the
    citizen's id only), so everything that reads it back keeps working."""
    kept = {k: request[k] for k in (*KEPT, *KEPT_TOO) if k in request}
    citizen = request.get("citizen") or {}
    return kept | {"citizen": {"id": citizen.get("id", "")}, "content": {}}


def to_purge(session: Session, *, before: datetime, limit: int) -> list[Notification]:
    """Unpurged notifications final since before `before`, none of whose attempts is still
    `sending` (reconciliation may need their texts to ask the provider)."""
    in_flight = exists().where(
        Attempt.notification_id == Notification.id, Attempt.status == SENDING
    )
    query = (
        select(Notification)
        .where(
            Notification.purged_at.is_(None),
            Notification.status.in_([s.value for s in FINAL]),
            Notification.updated_at < before,
            ~in_flight,
        )
        .limit(limit)
    )
    return list(session.scalars(query))


def purge_batch(session: Session, *, before: datetime, now: datetime, limit: int) -> int:
    """Purge up to `limit` notifications in the caller's transaction; how many."""
    rows = to_purge(session, before=before, limit=limit)
    for row in rows:
        row.request = purged_request(row.request)
        row.purged_at = now
    if rows:
        session.execute(
            update(Attempt)
            .where(Attempt.notification_id.in_([r.id for r in rows]))
            .values(error_detail=None)
        )
    return len(rows)


class ContentPurger(retention.ContentPurger):
    """Every `interval_s`, purges the content of notifications final for longer than
    `retention`; run in a `Worker`."""

    noun = "notification"

    def purge_batch(self, session: Session, *, before: datetime, now: datetime, limit: int) -> int:
        return purge_batch(session, before=before, now=now, limit=limit)
