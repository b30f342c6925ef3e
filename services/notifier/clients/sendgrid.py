"""Email through the SendGrid SDK: send one message, translate SendGrid's errors into ours."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Content, Email, MimeType, Subject, To

from services.notifier.clients import errors
from services.notifier.clients.base import (
    PermanentDeliveryError,
    ProviderReceipt,
    RetryableDeliveryError,
    answer_lost,
    parse_retry_after,
)
from services.notifier.clients.sendgrid_http import PooledClient, make_pool

DEFAULT_HOST = "https://api.sendgrid.com"


class SendGridEmail:
    """Sends email with `mail/send`; the notification id rides along as a custom argument."""

    provider = "sendgrid"

    def __init__(
        self,
        *,
        api_key: str,
        from_email: str,
        base_url: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        host = (base_url or DEFAULT_HOST).rstrip("/")
        self._client = SendGridAPIClient(api_key=api_key, host=host)
        # The SDK's client again, its connections kept alive, one per send thread
        # (see `sendgrid_http`).
        self._client.client = PooledClient(
            host=host,
            request_headers=self._client.client.request_headers,
            version=3,
            timeout=timeout_s,
            pool=make_pool(),
        )
        self._from = Email(from_email).get()

    def send(
        self,
        *,
        to: str,
        subject: str,
        text: str,
        html: str,
        notification_id: str,
        headers: Mapping[str, str],
    ) -> ProviderReceipt:
        try:
            response = self._client.send(
                self._mail(to, subject, text, html, notification_id, headers)
            )
        except HTTPError as error:
            raise _translate(error) from error
        except OSError as error:  # URLError, timeouts, refused connections
            raise RetryableDeliveryError(
                f"sendgrid unreachable: {type(error).__name__}",
                code="network",
                in_doubt=answer_lost(error),
            ) from error
        reference = response.headers.get("X-Message-Id") if response.headers else None
        return ProviderReceipt(provider=self.provider, reference=reference)

    def _mail(  # noqa: PLR0917 - one mail's parts
        self,
        to: str,
        subject: str,
        text: str,
        html: str,
        notification_id: str,
        headers: Mapping[str, str],
    ) -> dict[str, Any]:
        """The request body `Mail(...).get()` would give, built from the SDK's part helpers
        (address parsing, content checks) without assembling and flattening a `Mail`."""
        mail: dict[str, Any] = {
            "from": self._from,
            "subject": Subject(subject).get(),
            # Personalization-level: SendGrid's spec types the top-level custom_args as a string.
            "personalizations": [
                {"to": [_recipient(to)], "custom_args": {"notification_id": notification_id}}
            ],
            "content": [
                Content(MimeType.text, text).get(),
                Content(MimeType.html, html).get(),
            ],
        }
        if headers:
            mail["headers"] = dict(headers)
        return mail


# A bare address: what `To(...)` makes of it is the address alone, without parsing it.
_BARE_ADDRESS = re.compile(
    r"[A-Za-z0-9_%+\-]+(?:\.[A-Za-z0-9_%+\-]+)*@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*"
)


def _recipient(to: str) -> dict[str, str]:
    """`To(to).get()`; a bare address (nearly every one) skips the RFC 822 parser."""
    return {"email": to} if _BARE_ADDRESS.fullmatch(to) else To(to).get()


def _translate(error: HTTPError) -> Exception:
    status = int(error.status_code)
    detail = _first_message(error)
    if errors.sendgrid_class(status) is errors.ErrorClass.RETRYABLE:
        retry_after = (
            parse_retry_after(error.headers.get("Retry-After"))
            if error.headers is not None
            else None
        )
        return RetryableDeliveryError(
            f"sendgrid {status}: {detail}", code=f"http-{status}", retry_after=retry_after
        )
    return PermanentDeliveryError(f"sendgrid {status}: {detail}", code=f"http-{status}")


def _first_message(error: HTTPError) -> str:
    try:
        errors = error.to_dict.get("errors") or []
        return str(errors[0].get("message", "error")) if errors else "error"
    except (ValueError, AttributeError, UnicodeDecodeError):
        return "error"
