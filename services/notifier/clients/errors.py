"""Every provider error we act on, in one table: what it means and what delivery does about it.

- PERMANENT: will never succeed for this recipient on this channel; no retry, the next channel
  (or `failed` and a dead letter when none is left).
- RETRYABLE: worth trying again after a backoff (honouring `Retry-After`), within the
  channel's time limit (`sending.RetryPolicy`).
- OPT_OUT: permanent, and the recipient unsubscribed at the provider itself: the opt-out is
  recorded on our side too, so both stay in sync.

Anything not listed falls to the HTTP status: 429 and 5xx (and no answer at all: network errors,
timeouts) are RETRYABLE; every other 4xx is PERMANENT - including a Twilio 4xx whose code is not
in the table, because a request Twilio refused once will be refused again the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

_CODE = re.compile(r"[0-9]{1,10}")  # `str.isdigit` also takes "²", which `int` refuses


class ErrorClass(StrEnum):
    """What delivery does about a provider error."""

    PERMANENT = "permanent"
    RETRYABLE = "retryable"
    OPT_OUT = "opt-out"


@dataclass(frozen=True, slots=True)
class ProviderError:
    """One row of the table: the error's class and what it means, for people."""

    kind: ErrorClass
    meaning: str


_P, _R, _O = ErrorClass.PERMANENT, ErrorClass.RETRYABLE, ErrorClass.OPT_OUT

# Twilio error codes (https://www.twilio.com/docs/api/errors), on the API's answer or on a
# status callback's ErrorCode.
TWILIO: dict[int, ProviderError] = {
    21211: ProviderError(_P, "invalid 'To' phone number"),
    21212: ProviderError(_P, "invalid 'From' phone number"),
    21408: ProviderError(_P, "permission to send to this region is not enabled"),
    21601: ProviderError(_P, "phone number is not a valid SMS-capable number"),
    21602: ProviderError(_P, "message body is required"),
    21604: ProviderError(_P, "'To' phone number is required"),
    21606: ProviderError(_P, "the 'From' number is not a valid, SMS-capable number"),
    21610: ProviderError(_O, "recipient unsubscribed (replied STOP)"),
    21612: ProviderError(_P, "cannot route to this number from this sender"),
    21614: ProviderError(_P, "'To' number is not a mobile number"),
    21617: ProviderError(_P, "message body exceeds 1600 characters"),
    21635: ProviderError(_P, "'To' number cannot be reached by SMS (landline or unreachable)"),
    30003: ProviderError(_P, "unreachable destination handset"),
    30004: ProviderError(_P, "message blocked by the recipient or carrier"),
    30005: ProviderError(_P, "unknown destination handset"),
    30006: ProviderError(_P, "landline or unreachable carrier"),
    30007: ProviderError(_P, "message filtered by the carrier"),
}

# SendGrid answers `mail/send` with an HTTP status and messages, no codes of its own.
SENDGRID: dict[int, ProviderError] = {
    400: ProviderError(_P, "bad request: the message or an address is invalid"),
    401: ProviderError(_P, "API key missing or invalid"),
    403: ProviderError(_P, "API key lacks permission, or the sender is not verified"),
    413: ProviderError(_P, "message too large"),
    429: ProviderError(_R, "too many requests"),
}


def by_status(status: int | None) -> ErrorClass:
    """The class of an error the tables do not list: from its HTTP status (None: no answer)."""
    if status is None or status == 429 or status >= 500:
        return ErrorClass.RETRYABLE
    return ErrorClass.PERMANENT


def twilio_class(code: int | None, status: int | None) -> ErrorClass:
    """The class of a Twilio error: its code's row, else by HTTP status (a 4xx: permanent)."""
    if code is not None and code in TWILIO:
        return TWILIO[code].kind
    return by_status(status)


def sendgrid_class(status: int) -> ErrorClass:
    """The class of a SendGrid error, by HTTP status."""
    row = SENDGRID.get(status)
    return row.kind if row else by_status(status)


def twilio_meaning(code: str | int | None) -> str | None:
    """What a Twilio error code means, when the table lists it."""
    number = int(code) if isinstance(code, str) and _CODE.fullmatch(code) else code
    row = TWILIO.get(number) if isinstance(number, int) else None
    return row.meaning if row else None


def is_twilio_opt_out(code: str | None) -> bool:
    """Whether an error code recorded on an attempt (a string) says the recipient opted out."""
    row = TWILIO.get(int(code)) if code is not None and _CODE.fullmatch(code) else None
    return row is not None and row.kind is ErrorClass.OPT_OUT
