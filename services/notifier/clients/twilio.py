"""SMS through the Twilio SDK: send one message, translate Twilio's errors into ours."""

from __future__ import annotations

from datetime import datetime

from twilio.base.exceptions import TwilioException
from twilio.rest import Client

from services.notifier.clients.base import (
    PermanentDeliveryError,
    ProviderReceipt,
    RetryableDeliveryError,
    parse_retry_after,
)
from services.notifier.clients.twilio_http import http_client

# Twilio error codes that will never succeed for this number: fall through to the next channel.
# https://www.twilio.com/docs/api/errors
PERMANENT: dict[int, str] = {
    21211: "invalid 'To' phone number",
    21212: "invalid 'From' phone number",
    21408: "permission to send to this region is not enabled",
    21601: "phone number is not a valid SMS-capable number",
    21602: "message body is required",
    21604: "'To' phone number is required",
    21606: "the 'From' number is not a valid, SMS-capable number for this account",
    21610: "recipient unsubscribed (replied STOP)",
    21612: "cannot route to this number from this sender",
    21614: "'To' number is not a mobile number",
    21617: "message body exceeds 1600 characters",
    21635: "'To' number cannot be reached by SMS (landline or unreachable carrier)",
    30003: "unreachable destination handset",
    30004: "message blocked by the recipient or carrier",
    30005: "unknown destination handset",
    30006: "landline or unreachable carrier",
    30007: "message filtered by the carrier",
}


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
                f"twilio unreachable: {type(error).__name__}", code="network"
            ) from error
        return ProviderReceipt(provider=self.provider, reference=str(message.sid))

    def find_sent(self, *, to: str, body: str, since: datetime) -> str | None:
        """The SID of a message Twilio accepted for `to` with `body` since `since`, if any:
        how a crash between the call and our record is reconciled without sending twice."""
        try:
            messages = self._client.messages.list(to=to, limit=200)
        except TwilioException as error:
            raise self._translate(error) from error
        except OSError as error:
            raise RetryableDeliveryError(
                f"twilio unreachable: {type(error).__name__}", code="network"
            ) from error
        for message in messages:
            created = message.date_created
            if message.body == body and (created is None or created >= since):
                return str(message.sid)
        return None

    def _translate(self, error: TwilioException) -> Exception:
        status = getattr(error, "status", None)
        code = getattr(error, "code", None)
        message = getattr(error, "msg", None) or getattr(error, "detail", None) or "error"
        label = str(code) if code is not None else f"http-{status}"
        if isinstance(code, int) and code in PERMANENT:
            return PermanentDeliveryError(f"twilio {code}: {PERMANENT[code]}", code=label)
        if status == 429 or (isinstance(status, int) and status >= 500) or status is None:
            headers = self._http.last_headers or {}
            return RetryableDeliveryError(
                f"twilio {status}: {message}",
                code=label,
                retry_after=parse_retry_after(headers.get("Retry-After")),
            )
        return PermanentDeliveryError(f"twilio {status}: {message}", code=label)
