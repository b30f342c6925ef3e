"""One provider call for one channel of a notification: the message as the channel's
sender takes it (an email carries its one-click unsubscribe headers)."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.notifications import Channel, NotificationRequest
from services.notifier import flows, tokens
from services.notifier.clients import Senders
from services.notifier.clients.base import ProviderReceipt


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Inline retries of retryable provider errors, bounded so a poll never runs long."""

    retries: int = 3
    base_s: float = 0.5
    cap_s: float = 10.0


def call_provider(
    senders: Senders,
    request: NotificationRequest,
    channel: Channel,
    to: str,
    *,
    unsubscribe_secret: bytes,
    public_url: str,
) -> ProviderReceipt:
    """Send `request` on `channel` to `to`; the sender's errors propagate."""
    if channel is Channel.SMS:
        assert request.content.sms is not None
        return senders.sms.send(to=to, body=request.content.sms.body, notification_id=request.id)
    email = request.content.email
    assert email is not None
    token = tokens.sign(unsubscribe_secret, citizen_id=request.citizen.id, channel="email")
    return senders.email.send(
        to=to,
        subject=email.subject,
        text=email.text,
        html=email.html,
        notification_id=request.id,
        headers=flows.unsubscribe_headers(public_url, token),
    )
