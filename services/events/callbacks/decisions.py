"""Agency callbacks, the pure part: signatures, bodies, retry decisions and endpoint health.

The sender (`sender.py`) does the I/O and applies these decisions; nothing here reads
a clock or the network.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum

from schemas.notifications import StatusChange

SIGNATURE_HEADER = "Avisa-Signature"
DELIVERY_HEADER = "Avisa-Delivery"
ACTIVE = "active"
SUSPENDED = "suspended"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The `Avisa-Signature` value: `t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, body: bytes, header: str, *, now: int, tolerance_s: int = 300) -> bool:
    """What a receiver does (docs/callbacks.md): check the HMAC and that `t` is recent."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    expected = sign(secret, body, timestamp).rpartition("v1=")[2]
    fresh = abs(now - timestamp) <= tolerance_s
    return fresh and hmac.compare_digest(expected, parts.get("v1", ""))


def agency_of(source: str) -> str:
    """The agency that owns a source: the source itself or its first path segment."""
    return source.partition("/")[0]


def body_of(change: StatusChange) -> str:
    """The JSON an agency receives for one status change (provider references stay inside)."""
    document = change.model_dump(mode="json", exclude={"provider_reference"})
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


class Verdict(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DROP = "drop"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one POST came to: an HTTP status, or a network error (status None)."""

    status: int | None
    error: str | None = None
    retry_after_s: float | None = None
    refused: bool = False  # the request could not be made to this URL, nor ever will be

    @property
    def description(self) -> str:
        if self.refused:
            return f"callback URL refused: {self.error}"
        if self.status is None:
            return f"network error: {self.error}"
        return f"HTTP {self.status}" + (f": {self.error}" if self.error else "")


def verdict(attempt: Attempt) -> Verdict:
    """2xx delivered; network errors, 429 and 5xx are retried; any other answer is final; a
    URL refused before sending parks the delivery (`REFUSED`) until the URL changes."""
    if attempt.refused:
        return Verdict.REFUSED
    status = attempt.status
    if status is None or status == 429 or status >= 500:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.DELIVERED
    return Verdict.DROP


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_s: float
    max_s: float
    max_attempts: int
    suspend_after: timedelta


def backoff_s(
    attempts: int, policy: RetryPolicy, *, jitter: float, retry_after_s: float | None
) -> float:
    """Delay before attempt `attempts + 1`: exponential, capped, with jitter in [0.5, 1).

    `jitter` is a random number in [0, 1); a `Retry-After` from the endpoint is honoured
    (still capped), so a rate-limited receiver is not hammered.
    """
    exponential = policy.base_s * 2.0 ** max(0, min(attempts - 1, 30))
    delay = min(policy.max_s, exponential) * (0.5 + jitter / 2)
    if retry_after_s is not None:
        delay = max(delay, min(policy.max_s, retry_after_s))
    return delay


@dataclass(frozen=True, slots=True)
class Health:
    """An endpoint's health as the agency sees it in `GET /v1/agencies/{id}/callback`."""

    state: str
    failures: int
    failing_since: datetime | None
    last_error: str | None
    last_success_at: datetime | None
    suspended_at: datetime | None


def after_success(health: Health, now: datetime) -> Health:
    return replace(health, failures=0, failing_since=None, last_success_at=now)


def after_failure(health: Health, error: str, now: datetime, policy: RetryPolicy) -> Health:
    """Count a failure; an endpoint failing without a success for `suspend_after` is suspended."""
    since = health.failing_since or now
    failed = replace(health, failures=health.failures + 1, failing_since=since, last_error=error)
    if health.state == ACTIVE and now - since >= policy.suspend_after:
        return replace(failed, state=SUSPENDED, suspended_at=now)
    return failed


def after_refusal(health: Health, error: str, now: datetime) -> Health:
    """A URL that cannot be used suspends the endpoint at once, saying why: retrying it
    would fail the same way, and a re-PUT of the callback resumes it."""
    failed = replace(
        health,
        failures=health.failures + 1,
        failing_since=health.failing_since or now,
        last_error=error,
    )
    return replace(failed, state=SUSPENDED, suspended_at=health.suspended_at or now)
