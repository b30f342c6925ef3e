"""Provider webhooks: Twilio status callbacks and inbound SMS keywords, SendGrid events.

Every request is verified first (Twilio's `X-Twilio-Signature`, SendGrid's ECDSA signature);
unsigned or badly signed ones get 403 and change nothing. Each applied event is remembered by
the provider's id, and its status change is published (acknowledged) before the database
commit, so a failure anywhere makes the provider retry rather than lose the change."""

from __future__ import annotations

import base64
import binascii
import logging
import re
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from sendgrid.helpers.eventwebhook import EventWebhook
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator

from common.problems import Problem
from services.notifier import keywords
from services.notifier.reports import sendgrid as sendgrid_events
from services.notifier.reports import twilio as twilio_events
from services.notifier.reports.apply import WebhookContext

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/providers", tags=["provider webhooks"])

TWILIO_SIGNATURE = "X-Twilio-Signature"
SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def _forbidden(detail: str) -> Problem:
    return Problem(403, "Forbidden", detail, kind="bad-signature")


def public_url_of(request: Request, public_url: str) -> str:
    """The URL Twilio signed: our public base URL, the path and the query, as received."""
    query = request.url.query
    return public_url.rstrip("/") + request.url.path + (f"?{query}" if query else "")


def verify_twilio(context: WebhookContext, request: Request, raw: bytes) -> dict[str, str]:
    """The form's fields (blank values kept) when the signature is Twilio's, else 403."""
    signature = request.headers.get(TWILIO_SIGNATURE)
    if not context.twilio_auth_token or not signature:
        raise _forbidden("missing X-Twilio-Signature (or Twilio is not configured)")
    try:
        params = dict(parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=False))
    except UnicodeDecodeError:
        raise _forbidden("the form is not UTF-8") from None
    validator = RequestValidator(context.twilio_auth_token)
    if not validator.validate(public_url_of(request, context.public_url), params, signature):
        raise _forbidden("X-Twilio-Signature does not match")
    return params


_UNIX_TIME = re.compile(r"[0-9]{1,11}")


def check_freshness(timestamp: str, *, now: float, tolerance_s: float) -> None:
    """403 unless the signed timestamp is Unix seconds within `tolerance_s` of `now`: a
    captured request replayed later (or one signed for years ahead) is refused, as SendGrid
    and Stripe advise."""
    if not _UNIX_TIME.fullmatch(timestamp):
        raise _forbidden("the SendGrid signature timestamp is not Unix seconds")
    if abs(now - int(timestamp)) > tolerance_s:
        raise _forbidden(
            f"the SendGrid signature timestamp is more than {tolerance_s:g} s from now"
        )


def verify_sendgrid(context: WebhookContext, request: Request, raw: bytes) -> str:
    """The body as text when SendGrid's ECDSA signature over timestamp+body holds and the
    timestamp is recent, else 403."""
    signature = request.headers.get(SENDGRID_SIGNATURE)
    timestamp = request.headers.get(SENDGRID_TIMESTAMP)
    if not context.sendgrid_public_key or not signature or not timestamp:
        raise _forbidden("missing SendGrid signature headers (or no public key configured)")
    check_freshness(
        timestamp,
        now=context.clock().timestamp(),
        tolerance_s=context.sendgrid_timestamp_tolerance_s,
    )
    try:
        payload = raw.decode()
        base64.b64decode(signature, validate=True)
        webhook = EventWebhook()
        key = webhook.convert_public_key_to_ecdsa(context.sendgrid_public_key)
        valid = webhook.verify_signature(payload, signature, timestamp, key)
    except (UnicodeDecodeError, binascii.Error, ValueError):
        valid = False
    if not valid:
        raise _forbidden("the SendGrid event signature does not match")
    return payload


def _context(request: Request) -> WebhookContext:
    context: WebhookContext = request.app.state.webhooks
    return context


@router.post("/twilio/status", status_code=204)
async def twilio_status(request: Request) -> Response:
    """Twilio's message status callback: delivered/undelivered/failed update the attempt."""
    context = _context(request)
    params = verify_twilio(context, request, await request.body())
    await run_in_threadpool(
        twilio_events.apply_status, context, params, request.query_params.get("n")
    )
    return Response(status_code=204)


@router.post("/twilio/inbound")
async def twilio_inbound(request: Request) -> Response:
    """An SMS from a citizen: STOP/BAJA/CANCELAR, START/ALTA, AYUDA/HELP; answers TwiML."""
    context = _context(request)
    params = verify_twilio(context, request, await request.body())
    reply = await run_in_threadpool(twilio_events.apply_inbound, context, params)
    return Response(keywords.twiml(reply), media_type="application/xml")


@router.post("/sendgrid/events", status_code=204)
async def sendgrid_event_webhook(request: Request) -> Response:
    """SendGrid's signed event webhook: a JSON array of events, deduplicated by sg_event_id."""
    context = _context(request)
    payload = verify_sendgrid(context, request, await request.body())
    events = sendgrid_events.parse(payload)
    await run_in_threadpool(sendgrid_events.apply_all, context, events)
    return Response(status_code=204)
