"""The callback sender: POSTs queued deliveries to agency endpoints, signed, with backoff and
suspension.

Runs in a `common.runtime.Worker` thread. Each delivery is claimed (attempts + 1, invisible for
a lease) before the POST, so replicas never send the same row at the same time; a crash
mid-POST means the row comes back after the lease (at-least-once: receivers dedupe on the
`Avisa-Delivery` header).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.orm import Session, sessionmaker

from common.runtime import Loop
from services.events.callbacks import store
from services.events.callbacks.decisions import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    Attempt,
    RetryPolicy,
    Verdict,
    after_failure,
    after_refusal,
    after_success,
    backoff_s,
    sign,
    verdict,
)
from services.events.callbacks.targets import refusal_of, url_error

log = logging.getLogger(__name__)

USER_AGENT = "Avisa-Callbacks/1"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class CallbackSender(Loop):
    """Sweeps due deliveries until `stop()`; `wake()` makes it look again at once."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        client: httpx.Client,
        policy: RetryPolicy,
        timeout_s: float,
        poll_s: float,
        batch: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        jitter: Callable[[], float] = random.random,
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(interval_s=poll_s)
        self._sessions = sessions
        self._client = client
        self._policy = policy
        self._timeout_s = timeout_s
        self._batch = batch
        self._clock = clock
        self._jitter = jitter
        self._on_outcome = on_outcome

    def wake(self, *_: object) -> None:
        """`poke()`, with the signature of a callback (new deliveries were stored)."""
        self.poke()

    def round(self) -> bool:
        """A sweep; after one that attempted something, sweep again at once."""
        return self.sweep() > 0

    def round_failed(self, error: Exception) -> None:
        log.exception("callback sweep failed")

    def sweep(self) -> int:
        """Attempt every due delivery once (a failing endpoint only once per sweep)."""
        with self._sessions() as session:
            due = store.due(session=session, now=self._clock(), limit=self._batch)
        failing: set[str] = set()
        attempted = 0
        for item in due:
            if item.agency_id in failing or self.stopping:
                continue
            try:
                if not self._claim(item):
                    continue
                attempted += 1
                delivered = self._deliver(item)
            except Exception:  # one agency's delivery must not stop the others' (its lease ends)
                log.exception("callback delivery failed", extra={"agency_id": item.agency_id})
                delivered = False
            if not delivered:
                failing.add(item.agency_id)
        return attempted

    def _claim(self, item: store.Due) -> bool:
        until = store.lease(self._clock(), self._timeout_s)
        with self._sessions.begin() as session:
            return store.claim(session=session, item=item, lease_until=until)

    def _post(self, item: store.Due) -> Attempt:
        invalid = url_error(item.url)  # a URL stored before it was checked at the PUT
        if invalid is not None:
            return Attempt(status=None, error=invalid, refused=True)
        body = item.body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(item.secret, body, int(time.time())),
            DELIVERY_HEADER: str(item.id),
        }
        try:
            response = self._client.post(
                item.url, content=body, headers=headers, timeout=self._timeout_s
            )
        except httpx.HTTPError as error:
            refusal = refusal_of(error)
            if refusal is not None:
                return Attempt(status=None, error=refusal, refused=True)
            return Attempt(status=None, error=type(error).__name__)
        except (httpx.InvalidURL, ValueError, UnicodeError) as error:
            return Attempt(status=None, error=f"not a usable URL: {error}", refused=True)
        reason = response.reason_phrase or None
        return Attempt(response.status_code, reason, _retry_after(response))

    def _deliver(self, item: store.Due) -> bool:
        """POST one delivery and record what came of it; True when delivered."""
        attempt = self._post(item)
        outcome = verdict(attempt)
        if outcome is Verdict.RETRY and item.attempts + 1 >= self._policy.max_attempts:
            outcome = Verdict.DROP
        now = self._clock()
        with self._sessions.begin() as session:
            callback = store.get(session=session, agency_id=item.agency_id)
            if outcome is Verdict.RETRY:
                delay = backoff_s(
                    item.attempts + 1,
                    self._policy,
                    jitter=self._jitter(),
                    retry_after_s=attempt.retry_after_s,
                )
                at = now + timedelta(seconds=delay)
                store.reschedule(
                    session=session, delivery_id=item.id, at=at, error=attempt.description
                )
            elif outcome is Verdict.REFUSED:  # parked with its endpoint, sent once it is fixed
                store.reschedule(
                    session=session, delivery_id=item.id, at=now, error=attempt.description
                )
            else:
                store.finish(session=session, delivery_id=item.id)
            if callback is not None:
                before = store.health_of(callback)
                if outcome is Verdict.DELIVERED:
                    health = after_success(before, now)
                elif outcome is Verdict.REFUSED:
                    health = after_refusal(before, attempt.description, now)
                else:
                    health = after_failure(before, attempt.description, now, self._policy)
                store.apply_health(callback, health, now)
                if health.state != before.state:
                    log.warning(
                        "callback endpoint suspended",
                        extra={"agency_id": item.agency_id, "error": health.last_error},
                    )
        self._log(item, attempt, outcome)
        return outcome is Verdict.DELIVERED

    def _log(self, item: store.Due, attempt: Attempt, outcome: Verdict) -> None:
        extra = {
            "agency_id": item.agency_id,
            "delivery_id": item.id,
            "attempt": item.attempts + 1,
            "outcome": outcome.value,
        }
        if self._on_outcome is not None:
            self._on_outcome(outcome.value)
        if outcome is Verdict.DELIVERED:
            log.debug("callback delivered", extra=extra)
        else:
            log.warning("callback failed", extra={**extra, "error": attempt.description})
