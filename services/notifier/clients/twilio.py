"""SMS through the Twilio SDK: send one message, translate Twilio's errors into ours."""

from __future__ import annotations

from datetime import datetime

from twilio.base.exceptions import TwilioException
from twilio.rest import Client

from services.notifier.clients import errors
from services.notifier.clients.base import (
    PermanentDeliveryError,
    ProviderReceipt,
    RetryableDeliveryError,
    answer_lost,
    parse_retry_after,
)
from services.notifier.clients.twilio_http import http_client

# Kept for readers of a Twilio error code's meaning (status callbacks); classes: `errors`.
PERMANENT: dict[int, str] = {code: row.meaning for code, row in errors.TWILIO.items()}


class TwilioSms:
    """Sends SMS with `messages.create`; status callbacks come back to the notifier."""

    provider = "twilio"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        public_url: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        base_url: str | None = None,
        timeout_s: float = 10.0,
        pool_size: int = 10,
    ) -> None:
        if not (from_number or messaging_service_sid):
            raise ValueError("Twilio needs TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
        self._http = http_client(timeout=timeout_s, pool_size=pool_size)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        if base_url:
            self._client.api.base_url = base_url.rstrip("/")
        self._sender: dict[str, str] = (
            {"from_": from_number}
            if from_number
            else {"messaging_service_sid": messaging_service_sid or ""}
        )
        self._public_url = public_url.rstrip("/")

    def send(self, *, to: str, body: str, notification_id: str) -> ProviderReceipt:
        callback = f"{self._public_url}/v1/providers/twilio/status?n={notification_id}"
        try:
            message = self._client.messages.create(
                to=to, body=body, status_callback=callback, **self._sender
            )
        except TwilioException as error:
            raise self._translate(error) from error
        except OSError as error:  # requests' connection errors and timeouts are OSErrors
            raise RetryableDeliveryError(
                f"twilio unreachable: {type(error).__name__}",
                code="network",
                in_doubt=answer_lost(error),
            ) from error
        return ProviderReceipt(provider=self.provider, reference=str(message.sid))

    def find_sent(self, *, to: str, body: str, since: datetime, until: datetime) -> list[str]:
        """The SIDs of every message Twilio accepted for `to` with `body` between `since` and
        `until`, newest first: how a crash between the call and our record is reconciled
        without sending twice. Another notification with the same text to the same number
        matches too; the caller tells them apart by the SIDs it already recorded."""
        try:
            messages = self._client.messages.list(to=to, limit=200)
        except TwilioException as error:
            raise self._translate(error) from error
        except OSError as error:
            raise RetryableDeliveryError(
                f"twilio unreachable: {type(error).__name__}", code="network"
            ) from error
        return [
            str(message.sid)
            for message in messages
            if message.body == body
            and (message.date_created is None or since <= message.date_created <= until)
        ]

    def _translate(self, error: TwilioException) -> Exception:
        status = getattr(error, "status", None)
        code = getattr(error, "code", None)
        message = getattr(error, "msg", None) or getattr(error, "detail", None) or "error"
        label = str(code) if code is not None else f"http-{status}"
        kind = errors.twilio_class(code if isinstance(code, int) else None, status)
        if kind is errors.ErrorClass.RETRYABLE:
            headers = self._http.last_headers or {}
            return RetryableDeliveryError(
                f"twilio {status}: {message}",
                code=label,
                retry_after=parse_retry_after(headers.get("Retry-After")),
            )
        meaning = errors.twilio_meaning(code if isinstance(code, int) else None)
        return PermanentDeliveryError(
            f"twilio {code}: {meaning}" if meaning else f"twilio {status}: {message}", code=label
        )
