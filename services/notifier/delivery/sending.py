"""Sending one notification on one channel: the provider call as the channel's sender takes it
(an email carries its one-click unsubscribe headers and the preference page link), each call
recorded, retryable errors retried with backoff within the channel's time limit."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from schemas.notifications import Channel, NotificationRequest
from services.notifier import citizen_links, flows, tokens
from services.notifier.clients import Senders
from services.notifier.clients.base import (
    DeliveryError,
    Gated,
    PermanentDeliveryError,
    ProviderReceipt,
    RetryableDeliveryError,
)
from services.notifier.delivery.recording import JournalRecorder
from services.notifier.preferences import Recipient
from services.notifier.reports import optouts as provider_optouts

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Inline retries of retryable provider errors, bounded in number and in time so a poll
    never runs long. The time limit covers one channel of one notification, calls and waits
    included; past it the channel is exhausted (the next channel, or `failed`)."""

    retries: int = 3
    base_s: float = 0.5
    cap_s: float = 10.0
    sms_limit_s: float = 30.0
    email_limit_s: float = 30.0
    critical_limit_s: float = 15.0

    def limit_s(self, channel: Channel, *, critical: bool) -> float:
        """The time limit of `channel`; a critical notification's is the shorter of that and
        `critical_limit_s`: a struggling provider hands it to the next channel sooner."""
        limit = self.sms_limit_s if channel is Channel.SMS else self.email_limit_s
        return min(limit, self.critical_limit_s) if critical else limit


def call_provider(
    senders: Senders,
    request: NotificationRequest,
    channel: Channel,
    to: str,
    *,
    token_keys: tokens.TokenKeys,
    public_url: str,
    now: datetime,
) -> ProviderReceipt:
    """Send `request` on `channel` to `to`; the sender's errors propagate. The SMS body and
    the email subject lose any bidirectional control characters here, the last step before
    the provider, whoever rendered them. Every email gets the citizen's preference page
    link, and a `{{ preferences_url }}` placeholder in any text becomes that link."""
    page = citizen_links.preferences_url(
        public_url,
        tokens.sign(token_keys, purpose=tokens.PREFERENCES, subject=request.citizen.id, now=now),
    )
    if channel is Channel.SMS:
        assert request.content.sms is not None
        body = flows.strip_bidi_controls(citizen_links.fill(request.content.sms.body, page))
        return senders.sms.send(to=to, body=body, notification_id=request.id)
    email = request.content.email
    assert email is not None
    token = tokens.sign(
        token_keys,
        purpose=tokens.UNSUBSCRIBE,
        subject=request.citizen.id,
        detail=Channel.EMAIL.value,
        now=now,
    )
    return senders.email.send(
        to=to,
        subject=flows.strip_bidi_controls(email.subject),
        text=citizen_links.email_text(email.text, page, request.locale),
        html=citizen_links.email_html(email.html, page, request.locale),
        notification_id=request.id,
        headers=flows.unsubscribe_headers(public_url, token),
    )


class ChannelSender:
    """Sends a notification on one channel: every call recorded `sending` before and
    `sent`/`failed` after; safe to share between threads."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        senders: Senders,
        public_url: str,
        token_keys: tokens.TokenKeys,
        policy: RetryPolicy,
        clock: Callable[[], datetime],
        sleep: Callable[[float], None],
        rng: random.Random,
        settles_in_doubt: frozenset[Channel] = frozenset(),
    ) -> None:
        self._sessions = sessions
        self._settles_in_doubt = settles_in_doubt
        self._senders = senders
        self._public_url = public_url
        self._token_keys = token_keys
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._gates = {
            Channel.SMS: senders.sms if isinstance(senders.sms, Gated) else None,
            Channel.EMAIL: senders.email if isinstance(senders.email, Gated) else None,
        }

    def send(
        self,
        request: NotificationRequest,
        channel: Channel,
        person: Recipient,
        recorder: JournalRecorder,
    ) -> flows.ChannelResult:
        """Call the channel's provider, retrying retryable errors while the policy allows."""
        started = self._clock()
        limit = self._policy.limit_s(channel, critical=request.critical)
        for retry in range(self._policy.retries + 1):
            receipt, error = self._attempt(request, channel, person, recorder)
            if receipt is not None:
                return flows.ChannelResult(channel, True, self._clock(), receipt.reference)
            if self._left_in_doubt(channel, error):
                log.warning(
                    "provider answer lost; the send is left to reconciliation",
                    extra={"notification_id": request.id, "channel": channel.value},
                )
                return flows.ChannelResult(
                    channel, False, self._clock(), detail=str(error), in_doubt=True
                )
            if isinstance(error, PermanentDeliveryError) or retry == self._policy.retries:
                break
            delay = self._delay(retry + 1, error)
            elapsed = (self._clock() - started).total_seconds()
            if elapsed + delay > limit:
                log.info(
                    "channel time limit reached",
                    extra={"notification_id": request.id, "channel": channel.value},
                )
                return flows.ChannelResult(
                    channel, False, self._clock(), detail=f"{error} (time limit {limit:g} s)"
                )
            self._sleep(delay)
        return flows.ChannelResult(channel, False, self._clock(), detail=str(error))

    def _delay(self, retry: int, error: DeliveryError | None) -> float:
        """Seconds before retry number `retry`: the backoff, or the provider's `Retry-After`
        in full (a wait past the time limit exhausts the channel now, never blocks)."""
        retry_after = getattr(error, "retry_after", None)
        delay = flows.backoff_delay(
            retry,
            base_s=self._policy.base_s,
            cap_s=self._policy.cap_s,
            retry_after=retry_after,
            jitter=self._rng.random(),
        )
        return max(delay, retry_after or 0.0)

    def _attempt(
        self,
        request: NotificationRequest,
        channel: Channel,
        person: Recipient,
        recorder: JournalRecorder,
    ) -> tuple[ProviderReceipt | None, DeliveryError | None]:
        """One provider call, recorded `sending` (durably) before and `sent`/`failed` after.

        The sender's own wait (its rate limit) comes before the record: an attempt left
        `sending` by a crash must be one whose call was under way, not one still queuing."""
        sender = self._senders.sms if channel is Channel.SMS else self._senders.email
        error = _wait_for_turn(self._gates[channel])
        attempt_id = recorder.begin_attempt(
            notification_id=request.id,
            channel=channel.value,
            provider=sender.provider,
            now=self._clock(),
        )
        receipt: ProviderReceipt | None = None
        if error is None:
            receipt, error = self._call(request, channel, person)
        if self._left_in_doubt(channel, error):
            # Stays `sending`, as after a crash mid-call, marked for the reconciler.
            recorder.doubt_attempt(attempt_id=attempt_id, detail=str(error))
            return None, error
        now = self._clock()
        recorder.finish_attempt(
            attempt_id=attempt_id,
            sent=receipt is not None,
            now=now,
            reference=receipt.reference if receipt else None,
            error_code=error.code if error else None,
            error_detail=str(error) if error else None,
        )
        if error is not None and flows.opts_out(channel, error.code):
            with self._sessions.begin() as session:
                provider_optouts.apply_provider_error(
                    session=session,
                    channel=channel,
                    code=error.code,
                    address=person.contact(channel),
                    now=now,
                )
        return receipt, error

    def _left_in_doubt(self, channel: Channel, error: DeliveryError | None) -> bool:
        """A lost answer on a channel whose provider reconciliation can settle (Twilio can be
        asked; SendGrid tells through its events): calling again might send it twice, so the
        attempt is left `sending` for the reconciler instead. Elsewhere it is retried."""
        return (
            isinstance(error, RetryableDeliveryError)
            and error.in_doubt
            and channel in self._settles_in_doubt
        )

    def _call(
        self, request: NotificationRequest, channel: Channel, person: Recipient
    ) -> tuple[ProviderReceipt | None, DeliveryError | None]:
        try:
            receipt = call_provider(
                self._senders,
                request,
                channel,
                person.contact(channel) or "",
                token_keys=self._token_keys,
                public_url=self._public_url,
                now=self._clock(),
            )
        except DeliveryError as failure:
            return None, failure
        except Exception as failure:
            log.exception("provider adapter failed", extra={"notification_id": request.id})
            return None, RetryableDeliveryError(
                f"unexpected {type(failure).__name__}", code="unexpected"
            )
        return receipt, None


def _wait_for_turn(gate: Gated | None) -> DeliveryError | None:
    """Wait for a gated sender's turn; the error when it refuses to wait that long."""
    if gate is None:
        return None
    try:
        gate.ready()
    except DeliveryError as refused:
        return refused
    return None
