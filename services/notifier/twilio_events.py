"""Applying verified Twilio webhooks: message status callbacks and inbound keywords."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy.orm import Session

from schemas.notifications import Channel
from services.notifier import directory, flows, keywords, parked, reports, repository
from services.notifier.clients.twilio import PERMANENT
from services.notifier.models import Attempt
from services.notifier.reports import WebhookContext

log = logging.getLogger(__name__)

# MessageStatus values that end a message's life; the rest (queued, sending, sent, accepted,
# scheduled, read) add nothing to the `sent` we recorded when Twilio accepted it.
_FINAL = {"delivered": True, "undelivered": False, "failed": False}


def status_report(status: str, error_code: str | None) -> reports.Report | None:
    """The report in a status callback, or None when it changes nothing we track (pure)."""
    delivered = _FINAL.get(status.lower())
    if delivered is None:
        return None
    if delivered:
        return reports.Report(delivered=True)
    code = error_code or None
    reason = PERMANENT.get(int(code)) if code and code.isdigit() else None
    return reports.Report(delivered=False, code=code, reason=reason or status.lower())


def apply_status(
    context: WebhookContext, params: Mapping[str, str], notification_id: str | None
) -> None:
    """Update the attempt the callback is about; a replay or an older status changes nothing."""
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    status = params.get("MessageStatus") or params.get("SmsStatus") or ""
    report = status_report(status, params.get("ErrorCode"))
    if report is None or not sid:
        return

    def find(session: Session) -> Attempt | None:
        return reports.find_attempt(
            session=session,
            provider="twilio",
            reference=sid,
            notification_id=notification_id,
            channel=Channel.SMS,
        )

    reports.settle(context, find)
    now = context.clock()
    with context.sessions.begin() as session:
        fresh = repository.record_provider_event(
            session=session, provider="twilio", event_id=f"{sid}:{status.lower()}", now=now
        )
        attempt = find(session)
        if not fresh or attempt is None:
            return
        if flows.opts_out(Channel.SMS, report.code) and params.get("To"):
            directory.set_phone_opt_out(
                session=session, phone=params["To"], opted_out=True, now=now
            )
        if attempt.status == repository.SENDING:  # still unrecorded past the settle bound
            parked.park(
                session=session,
                attempt=attempt,
                reference=sid,
                report=report,
                now=now,
            )
            return
        applied = reports.apply(
            session=session, attempt=attempt, report=report, now=now, defaults=context.defaults
        )
        context.publish(applied)
    log.info(
        "twilio status applied",
        extra={"notification_id": attempt.notification_id, "status": status, "sid": sid},
    )


def apply_inbound(context: WebhookContext, params: Mapping[str, str]) -> str | None:
    """Record STOP/START against the sender's number; the answer to send back, if any."""
    keyword = keywords.classify(params.get("Body", ""))
    phone = params.get("From", "")
    if keyword is None or not phone:
        return None
    if keyword.action is not keywords.Action.HELP:
        opted_out = keyword.action is keywords.Action.OPT_OUT
        with context.sessions.begin() as session:
            directory.set_phone_opt_out(
                session=session, phone=phone, opted_out=opted_out, now=context.clock()
            )
        log.info("sms keyword applied", extra={"action": keyword.action.value})
    return keyword.answer
