"""What every provider adapter offers, and the two kinds of failure it may report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from requests.exceptions import ReadTimeout


@dataclass(frozen=True, slots=True)
class ProviderReceipt:
    """The provider accepted the message; `reference` is its id there (Twilio SID, SendGrid id)."""

    provider: str
    reference: str | None


class DeliveryError(Exception):
    """A provider did not accept the message."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class RetryableDeliveryError(DeliveryError):
    """Worth trying again later (429, 5xx, network, timeout); `retry_after` in seconds if told.

    `in_doubt`: the request reached the provider whole and its answer was lost (a read timeout,
    a reset while waiting): the provider may have accepted the message, so calling again may
    send it twice."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retry_after: float | None = None,
        in_doubt: bool = False,
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after
        self.in_doubt = in_doubt


def answer_lost(error: BaseException) -> bool:
    """Whether a network failure came after the whole request was sent: our pooled clients'
    `TransportError(written=True)` anywhere in its causes, or a requests read timeout."""
    seen: BaseException | None = error
    while seen is not None:
        if getattr(seen, "written", False):
            return True
        if isinstance(seen, ReadTimeout):  # requests' (the Twilio client behind a proxy)
            return True
        seen = seen.__cause__ or getattr(seen, "reason", None)
        if not isinstance(seen, BaseException):
            return False
    return False


class PermanentDeliveryError(DeliveryError):
    """Will never succeed for this recipient on this channel: fall through to the next one."""


class SmsSender(Protocol):
    """Sends one SMS."""

    provider: str

    def send(self, *, to: str, body: str, notification_id: str) -> ProviderReceipt: ...


class EmailSender(Protocol):
    """Sends one email with a plain and an HTML part and extra headers."""

    provider: str

    def send(
        self,
        *,
        to: str,
        subject: str,
        text: str,
        html: str,
        notification_id: str,
        headers: Mapping[str, str],
    ) -> ProviderReceipt: ...


@runtime_checkable
class Gated(Protocol):
    """A sender with a wait of its own before each call (a rate limit)."""

    def ready(self) -> None:
        """Wait until the next call on this thread may go at once; a retryable error when the
        wait would be too long."""


class SmsLookup(Protocol):
    """A provider that can say whether it already accepted a message (Twilio can)."""

    def find_sent(self, *, to: str, body: str, since: datetime, until: datetime) -> list[str]: ...


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header in its delay-seconds form; None when absent or a date."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds)
