"""Per-sender rate limits: a token bucket in front of each provider adapter."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping

from services.notifier.clients.base import (
    EmailSender,
    ProviderReceipt,
    RetryableDeliveryError,
    SmsSender,
)


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; `acquire` blocks until one is free.
    Thread-safe: the delivery pool's threads share one bucket per sender."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._rate = rate
        self._capacity = burst if burst is not None else max(1.0, rate)
        self._tokens = self._capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def pause(self, seconds: float) -> None:
        """Hold every caller for `seconds`: the provider said so (429 with Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _reserve(self, max_wait_s: float) -> float:
        """Take a token (possibly going into debt); the seconds to wait before using it."""
        with self._lock:
            now = self._clock()
            paused = self._paused_until - now
            if paused > max_wait_s:
                # Holding this caller for the whole pause would outlast its time limit: hand
                # the wait back to the retry policy (which may move on to another channel).
                raise RetryableDeliveryError(
                    "the provider asked us to wait", code="paused", retry_after=paused
                )
            self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
            self._updated = now
            self._tokens -= 1.0
            debt = 0.0 if self._tokens >= 0 else -self._tokens / self._rate
            return max(debt, paused)

    def acquire(self, max_wait_s: float = math.inf) -> None:
        """Block until a token is free. When a provider pause (`pause`) would hold the caller
        longer than `max_wait_s`, raise `RetryableDeliveryError` with the time left instead."""
        wait = self._reserve(max_wait_s)
        if wait > 0:
            self._sleep(wait)


def _throttled(bucket: TokenBucket, error: RetryableDeliveryError) -> None:
    # A 429's Retry-After is about the account, not the message: every send waits it out.
    if error.code in ("http-429", "20429") or error.retry_after:
        bucket.pause(error.retry_after or 1.0)


class Gate:
    """The bucket step of a limited sender. `ready` takes the token ahead of the call (see
    `LimitedSms`); `take` is the call's own step: the token taken ahead, or one now."""

    def __init__(self, bucket: TokenBucket, max_wait_s: float) -> None:
        self._bucket = bucket
        self._max_wait_s = max_wait_s
        self._held = threading.local()

    def ready(self) -> None:
        if not getattr(self._held, "token", False):
            self._bucket.acquire(self._max_wait_s)
            self._held.token = True

    def take(self) -> None:
        if getattr(self._held, "token", False):
            self._held.token = False
            return
        self._bucket.acquire(self._max_wait_s)

    def throttled(self, error: RetryableDeliveryError) -> None:
        _throttled(self._bucket, error)


class LimitedSms:
    """An SmsSender that waits for its bucket before each call (at most `max_wait_s` of a
    provider pause: longer, it raises a retryable error carrying the time left).

    `ready` waits for the token before the caller records its attempt, so a process killed
    while it waits leaves no `sending` attempt behind: reconciliation takes an email attempt
    left `sending` as sent (SendGrid cannot be asked), and a wait there would make it a loss.
    The next `send` on the same thread uses that token."""

    def __init__(
        self, sender: SmsSender, bucket: TokenBucket, *, max_wait_s: float = math.inf
    ) -> None:
        self._sender = sender
        self._gate = Gate(bucket, max_wait_s)
        self.provider = sender.provider

    def ready(self) -> None:
        """Block until this thread may call `send` at once (or raise a retryable error)."""
        self._gate.ready()

    def send(self, *, to: str, body: str, notification_id: str) -> ProviderReceipt:
        self._gate.take()
        try:
            return self._sender.send(to=to, body=body, notification_id=notification_id)
        except RetryableDeliveryError as error:
            self._gate.throttled(error)
            raise


class LimitedEmail:
    """An EmailSender that waits for its bucket before each call (see `LimitedSms`)."""

    def __init__(
        self, sender: EmailSender, bucket: TokenBucket, *, max_wait_s: float = math.inf
    ) -> None:
        self._sender = sender
        self._gate = Gate(bucket, max_wait_s)
        self.provider = sender.provider

    def ready(self) -> None:
        """Block until this thread may call `send` at once (or raise a retryable error)."""
        self._gate.ready()

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
        self._gate.take()
        try:
            return self._sender.send(
                to=to,
                subject=subject,
                text=text,
                html=html,
                notification_id=notification_id,
                headers=headers,
            )
        except RetryableDeliveryError as error:
            self._gate.throttled(error)
            raise
