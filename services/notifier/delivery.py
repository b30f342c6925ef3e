"""Carrying out one notification request: record it, send it through the providers, and say
which status changes to publish. The consumer calls this; the decisions live in `flows`."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from schemas.notifications import Channel, NotificationRequest, Status, StatusChange
from services.notifier import flows, repository, tokens
from services.notifier.clients import Senders
from services.notifier.clients.base import (
    DeliveryError,
    PermanentDeliveryError,
    ProviderReceipt,
    RetryableDeliveryError,
)
from services.notifier.models import Notification

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Inline retries of retryable provider errors, bounded so a poll never runs long."""

    retries: int = 3
    base_s: float = 0.5
    cap_s: float = 10.0


@dataclass(slots=True)
class Result:
    """What processing one request produced: status changes to publish, and whether it failed."""

    changes: list[StatusChange] = field(default_factory=list)
    failed: str | None = None


class Deliverer:
    """Takes a notification request from `queued` to `sent`, `failed` or `suppressed`."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        senders: Senders,
        public_url: str,
        unsubscribe_secret: bytes,
        policy: RetryPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._sessions = sessions
        self._senders = senders
        self._public_url = public_url
        self._secret = unsubscribe_secret
        self._policy = policy or RetryPolicy()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security

    def process(self, request: NotificationRequest) -> Result:
        """Deliver `request` unless it was already taken on; a redelivery sends nothing."""
        with self._sessions() as session:
            existing = repository.get_notification(session=session, notification_id=request.id)
        if existing is not None:
            return self._replay(request, existing)
        now = self._clock()
        try:
            with self._sessions.begin() as session:
                repository.insert_notification(session=session, request=request, now=now)
        except IntegrityError:  # another consumer took it on between our read and insert
            return Result()
        result = Result([flows.status_change(request, Status.QUEUED, at=now)])
        self._deliver(request, result)
        return result

    def _replay(self, request: NotificationRequest, row: Notification) -> Result:
        """Republish what status.v1 never acknowledged; resume only if nothing was ever sent."""
        result = Result()
        if row.published_status is None:
            result.changes.append(
                flows.status_change(request, Status.QUEUED, at=repository.utc(row.created_at))
            )
        status = Status(row.status)
        if status is Status.QUEUED:
            with self._sessions() as session:
                tried = repository.count_attempts(session=session, notification_id=row.id)
            if tried == 0:
                self._deliver(request, result)
            else:  # crashed mid-send: sending again could duplicate; reconciliation is later work
                log.warning("notification left mid-delivery", extra={"notification_id": row.id})
            return result
        if row.published_status != row.status:
            result.changes += self._stored_final(request, row, status)
        return result

    def _stored_final(
        self, request: NotificationRequest, row: Notification, status: Status
    ) -> list[StatusChange]:
        at = repository.utc(row.updated_at)
        if status is not Status.SENT:
            return [flows.status_change(request, status, at=at, detail=row.detail)]
        with self._sessions() as session:
            sent = repository.sent_attempts(session=session, notification_id=row.id)
        return [
            flows.status_change(
                request,
                Status.SENT,
                at=repository.utc(a.at),
                channel=Channel(a.channel),
                provider_reference=a.provider_reference,
            )
            for a in sent
        ]

    def _deliver(self, request: NotificationRequest, result: Result) -> None:
        plan = flows.plan_delivery(request, now=self._clock())
        if plan.final is not None:
            outcome = flows.Outcome(plan.final, None, plan.detail)
        else:
            results: list[flows.ChannelResult] = []
            for channel in plan.channels:
                if not flows.should_continue(request, results):
                    break
                results.append(self._send_channel(request, channel))
            outcome = flows.outcome(results)
        now = self._clock()
        with self._sessions.begin() as session:
            repository.set_status(
                session=session,
                notification_id=request.id,
                status=outcome.status,
                now=now,
                detail=outcome.detail,
                channel=outcome.channel.value if outcome.channel else None,
            )
        result.changes += flows.final_changes(request, outcome, at=now)
        if outcome.status is Status.FAILED:
            result.failed = outcome.detail
        log.info(
            "notification %s",
            outcome.status.value,
            extra={
                "notification_id": request.id,
                "channel": outcome.channel,
                "detail": outcome.detail,
            },
        )

    def _send_channel(self, request: NotificationRequest, channel: Channel) -> flows.ChannelResult:
        """Call the channel's provider, retrying retryable errors inline within the policy."""
        error: DeliveryError | None = None
        for retry in range(self._policy.retries + 1):
            if retry:
                self._sleep(
                    flows.backoff_delay(
                        retry,
                        base_s=self._policy.base_s,
                        cap_s=self._policy.cap_s,
                        retry_after=getattr(error, "retry_after", None),
                        jitter=self._rng.random(),
                    )
                )
            receipt, error = self._attempt(request, channel)
            if receipt is not None:
                return flows.ChannelResult(channel, True, self._clock(), receipt.reference)
            if isinstance(error, PermanentDeliveryError):
                break
        return flows.ChannelResult(channel, False, self._clock(), detail=str(error))

    def _attempt(
        self,
        request: NotificationRequest,
        channel: Channel,
    ) -> tuple[ProviderReceipt | None, DeliveryError | None]:
        """One provider call, recorded `sending` before and `sent`/`failed` after."""
        provider = (self._senders.sms if channel is Channel.SMS else self._senders.email).provider
        with self._sessions.begin() as session:
            attempt_id = repository.add_attempt(
                session=session,
                notification_id=request.id,
                channel=channel.value,
                provider=provider,
                now=self._clock(),
            ).id
        receipt: ProviderReceipt | None = None
        error: DeliveryError | None = None
        try:
            receipt = self._call(request, channel)
        except DeliveryError as failure:
            error = failure
        except Exception as failure:
            log.exception("provider adapter failed", extra={"notification_id": request.id})
            error = RetryableDeliveryError(
                f"unexpected {type(failure).__name__}", code="unexpected"
            )
        with self._sessions.begin() as session:
            repository.finish_attempt(
                session=session,
                attempt_id=attempt_id,
                sent=receipt is not None,
                now=self._clock(),
                reference=receipt.reference if receipt else None,
                error_code=error.code if error else None,
                error_detail=str(error) if error else None,
            )
        return receipt, error

    def _call(self, request: NotificationRequest, channel: Channel) -> ProviderReceipt:
        to = flows.contact_for(request, channel) or ""
        if channel is Channel.SMS:
            assert request.content.sms is not None
            return self._senders.sms.send(
                to=to, body=request.content.sms.body, notification_id=request.id
            )
        email = request.content.email
        assert email is not None
        token = tokens.sign(self._secret, citizen_id=request.citizen.id, channel="email")
        return self._senders.email.send(
            to=to,
            subject=email.subject,
            text=email.text,
            html=email.html,
            notification_id=request.id,
            headers=flows.unsubscribe_headers(self._public_url, token),
        )
