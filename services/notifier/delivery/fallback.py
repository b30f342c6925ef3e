"""Falling back after a later failure: a message the provider accepted (`sent`) and then
reported undelivered, bounced or dropped. With `delivery: first` the notification goes back
to `queued` and the scheduler carries it on the channels not tried yet, through the same
plan as any send (opt-outs, quiet hours, the cap, `not_after`); a channel already used is
never called again for it (`repository.sent_attempt_on`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from schemas.notifications import Channel, NotificationRequest, Status
from services.notifier import flows, repository
from services.notifier.delivery import admission
from services.notifier.delivery.admission import Defaults
from services.notifier.models import Notification

REASON = "fallback"


def channels_left(
    *, session: Session, request: NotificationRequest, defaults: Defaults
) -> tuple[Channel, ...]:
    """The channels the citizen can still get `request` on that no attempt has used, in
    order (opt-outs, contacts and content as they are now)."""
    person = admission.recipients(session=session, requests=[request], defaults=defaults)[
        request.id
    ]
    tried = repository.channels_tried(session=session, notification_id=request.id)
    return tuple(c for c in flows.usable_channels(request, person).channels if c not in tried)


def schedule(
    *, session: Session, row: Notification, failed: str, to: Sequence[Channel], now: datetime
) -> str:
    """Put the notification back in `queued`, due now for the scheduler; the detail said."""
    detail = f"{failed}; falling back to {to[0].value}"
    row.status, row.detail, row.updated_at = Status.QUEUED.value, detail, now
    repository.put_deferral(session=session, notification_id=row.id, due_at=now, reason=REASON)
    return detail
