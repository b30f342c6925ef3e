"""The scheduler loop: sends deferred notifications when their quiet hours (or cap) end, and
reconciles interrupted attempts at start and then periodically. Runs in a `Worker` thread."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from common.kafka import OutgoingMessage, Producer
from common.runtime import Loop
from schemas.topics import Topics
from services.notifier import repository
from services.notifier.delivery.publishing import dead_letter, publish_and_mark, status_message
from services.notifier.delivery.requests import Deliverer, Result
from services.notifier.reports.reconcile import Reconciler

log = logging.getLogger(__name__)

_STALE_CLAIM = timedelta(minutes=5)  # a claim this old belongs to a scheduler that died


class Scheduler(Loop):
    """Claims due deferrals, resumes them, publishes their changes; reconciles on a timer."""

    def __init__(
        self,
        *,
        sessions: repository.SessionFactory,
        deliverer: Deliverer,
        reconciler: Reconciler,
        producer: Producer,
        topics: Topics,
        clock: Callable[[], datetime],
        interval_s: float = 1.0,
        reconcile_every_s: float = 30.0,
    ) -> None:
        super().__init__(interval_s=interval_s)
        self._sessions = sessions
        self._deliverer = deliverer
        self._reconciler = reconciler
        self._producer = producer
        self._topics = topics
        self._clock = clock
        self._reconcile_every = timedelta(seconds=reconcile_every_s)
        self._next_reconcile: datetime | None = None

    def round(self) -> bool:
        """`tick()`: after a round that did work, go again at once."""
        return self.tick()

    def round_failed(self, error: Exception) -> None:
        log.exception("scheduler round failed; will retry")

    def tick(self) -> bool:
        """One round: reconcile when due, then resume due deferrals. True if it did work."""
        now = self._clock()
        worked = False
        if self._next_reconcile is None or now >= self._next_reconcile:
            self._next_reconcile = now + self._reconcile_every
            worked = self._publish(self._reconciler.run_once())
        else:  # a lost answer is settled within seconds, not at the next full round
            worked = self._publish(self._reconciler.run_once(doubts_only=True))
        with self._sessions.begin() as session:
            due = repository.claim_due(session=session, now=now, stale_before=now - _STALE_CLAIM)
        results = {nid: self._deliverer.resume(nid) for nid in due}
        return self._publish(results) or worked

    def _publish(self, results: Mapping[str, Result]) -> bool:
        if not results:
            return False
        messages: list[OutgoingMessage] = []
        for result in results.values():
            messages += [status_message(change, self._topics) for change in result.changes]
            if result.failed is not None and result.request is not None:
                messages.append(dead_letter(result.request, result.failed, self._topics))
        publish_and_mark(self._producer, self._sessions, messages, results)
        return True
