"""Applying verified Twilio webhooks: message status callbacks and inbound keywords."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from sqlalchemy.orm import Session

from common.problems import Problem
from schemas.notifications import Channel
from services.notifier import directory, keywords, repository
from services.notifier.clients.twilio import PERMANENT
from services.notifier.models import Attempt
from services.notifier.reports import apply as reports
from services.notifier.reports import optouts as provider_optouts
from services.notifier.reports import parked
from services.notifier.reports.apply import WebhookContext

log = logging.getLogger(__name__)

# MessageStatus values that end a message's life; the rest (queued, sending, sent, accepted,
# scheduled, read) add nothing to the `sent` we recorded when Twilio accepted it.
_FINAL = {"delivered": True, "undelivered": False, "failed": False}

# What Twilio sends, bounded: a form field that does not look like it is refused (422) before
# it reaches a query or a column, whatever signed it. SIDs are two letters and 32 hex digits.
_SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")
_ERROR_CODE = re.compile(r"[0-9]{1,10}")
_ADDRESS = re.compile(r"[^\x00-\x1f\x7f]{1,64}")  # E.164, a short code, "whatsapp:+…"
INBOUND_PROVIDER = "twilio-inbound"  # inbound messages applied, by MessageSid


def form_field(
    params: Mapping[str, str], *names: str, pattern: re.Pattern[str], required: bool = True
) -> str | None:
    """The first of `names` present (blank counts as absent), when it matches `pattern`;
    422 naming the field when it does not, or when it is required and missing."""
    for name in names:
        value = params.get(name)
        if value:
            if not pattern.fullmatch(value):
                raise _invalid(name, "not a value Twilio sends here")
            return value
    if required:
        raise _invalid(names[0], "required")
    return None


def _invalid(name: str, message: str) -> Problem:
    return Problem(
        422,
        "Invalid webhook",
        "1 field is invalid",
        kind="validation",
        errors=[{"path": name, "message": message}],
    )


def status_report(status: str, error_code: str | None) -> reports.Report | None:
    """The report in a status callback, or None when it changes nothing we track (pure)."""
    delivered = _FINAL.get(status.lower())
    if delivered is None:
        return None
    if delivered:
        return reports.Report(delivered=True)
    code = error_code or None
    reason = PERMANENT.get(int(code)) if code and _ERROR_CODE.fullmatch(code) else None
    return reports.Report(delivered=False, code=code, reason=reason or status.lower())


def apply_status(
    context: WebhookContext, params: Mapping[str, str], notification_id: str | None
) -> None:
    """Update the attempt the callback is about; a replay or an older status changes nothing."""
    sid = form_field(params, "MessageSid", "SmsSid", pattern=_SID) or ""
    status = params.get("MessageStatus") or params.get("SmsStatus") or ""
    code = form_field(params, "ErrorCode", pattern=_ERROR_CODE, required=False)
    to = form_field(params, "To", pattern=_ADDRESS, required=False)
    report = status_report(status, code)
    if report is None:
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
        provider_optouts.apply_provider_error(
            session=session, channel=Channel.SMS, code=report.code, address=to, now=now
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
    """Record STOP/START against the sender's number; the answer to send back, if any.

    Each message is applied once, by its MessageSid: a replayed request (STOP, START, STOP,
    then START's request again) changes nothing and answers nothing."""
    sid = form_field(params, "MessageSid", "SmsSid", pattern=_SID) or ""
    phone = form_field(params, "From", pattern=_ADDRESS) or ""
    keyword = keywords.classify(params.get("Body", ""))
    if keyword is None:
        return None
    now = context.clock()
    with context.sessions.begin() as session:
        if not repository.record_provider_event(
            session=session, provider=INBOUND_PROVIDER, event_id=sid, now=now
        ):
            log.info("sms keyword replayed: ignored", extra={"sid": sid})
            return None
        if keyword.action is not keywords.Action.HELP:
            opted_out = keyword.action is keywords.Action.OPT_OUT
            directory.set_phone_opt_out(session=session, phone=phone, opted_out=opted_out, now=now)
    log.info("sms keyword applied", extra={"action": keyword.action.value, "sid": sid})
    return keyword.answer
