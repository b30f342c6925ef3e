"""Applying SendGrid's (verified) event webhook: delivered, bounces, drops, spam reports and
unsubscribes, each event once by its `sg_event_id`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    ValidationError,
    field_validator,
)
from sqlalchemy.orm import Session

from common.problems import Problem
from schemas.notifications import Channel
from services.notifier import directory, repository
from services.notifier.models import Attempt, Notification
from services.notifier.reports import apply as reports
from services.notifier.reports import parked
from services.notifier.reports.apply import WebhookContext

log = logging.getLogger(__name__)

# SendGrid event → our report. `processed`, `deferred` (SendGrid retries: not a failure),
# `open` and `click` change nothing we track. A bounce or a drop makes `delivery: first` fall
# back to the next channel. A spam report means the citizen got the email and does not want
# these: it marks the email failed (no fallback) and opts the citizen out of email.
_FAILED = {"bounce": "bounced", "dropped": "dropped", "spamreport": "reported as spam"}
_OPTS_OUT = frozenset({"spamreport", "unsubscribe", "group_unsubscribe"})


def parse(payload: str) -> list[dict[str, Any]]:
    """The usable events in a (verified) body; 400 when it is not a JSON array of objects.

    Each event is checked on its own (`usable`): one SendGrid cannot have meant (a field of
    the wrong type or size, a lone surrogate) is logged and skipped, and the others still
    apply - refusing the batch would make SendGrid retry all of it for days."""
    try:
        events = json.loads(payload)
    except (ValueError, RecursionError):
        raise Problem(400, "Bad request", "the body is not JSON (or is nested too deep)") from None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise Problem(400, "Bad request", "expected a JSON array of event objects")
    found = []
    for index, event in enumerate(events):
        try:
            found.append(usable(event))
        except ValidationError as error:
            paths = sorted({".".join(map(str, e["loc"])) for e in error.errors()})
            log.warning("sendgrid event skipped", extra={"index": index, "fields": paths})
    return found


def _encodable(value: str) -> str:
    value.encode()  # a lone surrogate ("\ud800") cannot be stored: UnicodeEncodeError
    return value


def _as_text(value: object) -> object:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


_Checked = (BeforeValidator(_as_text), AfterValidator(_encodable))
Id = Annotated[str, StringConstraints(min_length=1, max_length=200), *_Checked]
Code = Annotated[str, StringConstraints(min_length=1, max_length=64), *_Checked]
MessageId = Annotated[str, StringConstraints(min_length=1, max_length=400), *_Checked]
Reason = Annotated[str, StringConstraints(max_length=2000), *_Checked]


class SendGridEvent(BaseModel):
    """The fields of a SendGrid event we use, bounded by the columns they reach. The rest
    (`timestamp` among them: SendGrid's own clock, which we never act on) are ignored."""

    model_config = ConfigDict(extra="ignore")

    sg_event_id: Id
    event: Code
    sg_message_id: MessageId | None = None
    notification_id: Code | None = None
    status: Code | None = None
    reason: Reason | None = None
    response: Reason | None = None

    @field_validator("sg_message_id")
    @classmethod
    def _reference_fits(cls, value: str | None) -> str | None:
        if value is not None and len(value.split(".", 1)[0]) > 200:
            raise ValueError("the message id is longer than 200 characters")
        return value


def usable(event: dict[str, Any]) -> dict[str, Any]:
    """The event reduced to the fields we use, each checked; ValidationError when one is bad."""
    return SendGridEvent.model_validate(event).model_dump(exclude_none=True)


def event_report(event: dict[str, Any]) -> reports.Report | None:
    """What one event says about the email (pure); None when it changes nothing."""
    kind = str(event.get("event", ""))
    if kind == "delivered":
        return reports.Report(delivered=True)
    if kind not in _FAILED:
        return None
    reason = str(event.get("reason") or event.get("response") or _FAILED[kind])
    code = str(event.get("status") or kind)
    return reports.Report(
        delivered=False,
        code=code,
        reason=f"{_FAILED[kind]}: {reason}",
        fallback=kind not in _OPTS_OUT,
    )


def _message_id(event: dict[str, Any]) -> str | None:
    """`sg_message_id` is the X-Message-Id we stored, plus a suffix after the first dot."""
    value = event.get("sg_message_id")
    return str(value).split(".", 1)[0] if value else None


def _find(event: dict[str, Any]) -> Callable[[Session], Attempt | None]:
    def find(session: Session) -> Attempt | None:
        return reports.find_attempt(
            session=session,
            provider="sendgrid",
            reference=_message_id(event),
            notification_id=event.get("notification_id"),
            channel=Channel.EMAIL,
        )

    return find


def apply_all(context: WebhookContext, events: list[dict[str, Any]]) -> None:
    """Apply every new event in one transaction, publishing before the commit."""
    for event in events:
        if event_report(event) is not None:
            reports.settle(context, _find(event))
    now = context.clock()
    applied = reports.Applied()
    with context.sessions.begin() as session:
        for event in events:
            event_id = str(event.get("sg_event_id") or "")
            if not event_id or not repository.record_provider_event(
                session=session, provider="sendgrid", event_id=event_id, now=now
            ):
                continue
            attempt = _find(event)(session)
            if attempt is None:
                log.info("sendgrid event for no known email", extra={"sg_event_id": event_id})
                continue
            _apply_one(context, session, event, attempt=attempt, applied=applied, now=now)
        context.publish(applied)


def _apply_one(
    context: WebhookContext,
    session: Session,
    event: dict[str, Any],
    *,
    attempt: Attempt,
    applied: reports.Applied,
    now: datetime,
) -> None:
    """One new event: its opt-out, then its report (which may fall back or fail)."""
    if event.get("event") in _OPTS_OUT:
        row = session.get(Notification, attempt.notification_id)
        if row is not None:
            directory.opt_out_citizen(
                session=session, citizen_id=row.citizen_id, channel=Channel.EMAIL, now=now
            )
    report = event_report(event)
    if attempt.status == repository.SENDING and (report is not None or _message_id(event)):
        # Still unrecorded (past the settle bound for a report): a report is applied once the
        # attempt is resolved; any event is evidence that SendGrid has the email (`reconcile`).
        parked.park(
            session=session,
            attempt=attempt,
            reference=_message_id(event),
            report=report,
            now=now,
        )
    elif report is not None:
        applied.add(
            reports.apply(
                session=session,
                attempt=attempt,
                report=report,
                now=now,
                defaults=context.defaults,
            )
        )
