"""The scheduler loop: send reminder timers when they are due (run in a `Worker` thread).

Each round claims a batch of due timers in one transaction (row locks with `SKIP LOCKED` on
PostgreSQL, so replicas share the work; the database write lock on SQLite, one claimer at a
time), publishes their notification requests and waits for the broker's acknowledgement, then
marks them fired in that same transaction. A timer whose `not_after` passed is never sent: it
becomes `expired` with a `suppressed` status instead; a timer whose rule was disabled or deleted
since it was stored becomes `cancelled` (most are cancelled before, by `withdrawals`).

A crash after the publish and before the commit leaves the timers pending, so they are
published again by the next round: a reminder is never lost, and the duplicate carries the same
notification id, which the notifier absorbs. After a round that sent something the loop looks
again at once; after an empty one it sleeps until the earliest pending due time (one index
lookup), at most `max_sleep_s`, or until `poke()` says a new timer was stored. An empty round
while timers are due means another replica holds them all (PostgreSQL skipped them as locked):
it backs off `contended_s` instead of spinning on claims that find nothing.

With `watermark_topic` (the service sets it to `events.v1`), a timer due at T for a subject
fires only once every event accepted before T on the subject's partition is processed
(`watermarks`): a cancel answered 202 but still in the topic must win. The round reads the
watermarks once (a row per partition), claims up to the highest of them, and leaves pending
the claimed timers whose own partition is behind; they are looked at again after `held_s`.
A timer past its `not_after` is expired as before, held or not. A batch full of held timers
delays the ones due after them until their partition catches up (late, never stale); timers
due after the highest watermark, and stale ones there, wait for it (nothing is due yet).

Firing does no rendering or JSON work: the claim reads each stored request as JSON text and
its citizen id (the message key), and the producer sends a round's messages with one flush.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy.orm import Session, sessionmaker

from common.kafka import MessageRejected, OutgoingMessage, Producer
from common.runtime import Loop
from schemas.notifications import Status, StatusChange
from schemas.topics import Topics
from services.rules import timers, watermarks, withdrawals
from services.rules.models import TimerRow
from services.rules.timer_steps import status_of
from services.rules.timers import DueTimer

log = logging.getLogger(__name__)

_FOREVER = timedelta(days=36_500)  # no watermark yet: nothing is due

LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


class SchedulerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.fired = Counter(
            "avisa_rules_timers_fired", "Reminder timers sent when due", registry=registry
        )
        self.expired = Counter(
            "avisa_rules_timers_expired",
            "Reminder timers dropped because their deadline passed",
            registry=registry,
        )
        self.held = Counter(
            "avisa_rules_timers_held",
            "Due reminder timers claimed and left waiting: the rule engine had not processed"
            " their partition up to their due time",
            registry=registry,
        )
        self.lateness = Histogram(
            "avisa_rules_timer_lateness_seconds",
            "How long after its due time a reminder was published",
            buckets=LATENESS_BUCKETS,
            registry=registry,
        )


class Scheduler(Loop):
    """Claims due timers, publishes them, marks them fired; `run()` until `stop()`."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        producer: Producer,
        topics: Topics,
        metrics: SchedulerMetrics,
        batch_size: int = 500,
        max_sleep_s: float = 1.0,
        contended_s: float = 0.03,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        watermark_topic: str | None = None,
        held_s: float = 0.1,
        skip_recheck: bool = False,
    ) -> None:
        super().__init__(interval_s=max_sleep_s)  # also the wait after a failed round
        self._sessions = sessions
        self._producer = producer
        self._topics = topics
        self._metrics = metrics
        self._batch_size = batch_size
        self._max_sleep_s = max_sleep_s
        self._contended_s = contended_s
        self._clock = clock
        self.rounds = 0
        self._claimed_at: datetime | None = None  # the `now` of the last claim
        self._watermark_topic = watermark_topic
        self._held_s = held_s
        self._holding = False  # the last round left due timers waiting for a watermark
        self.held = 0  # timers left waiting, over every round (for tests and metrics)
        # A planted bug for the simulator's own test: fire without the fire-time checks.
        self._skip_recheck = skip_recheck

    @property
    def holding(self) -> bool:
        """Whether the last round left due timers waiting for the consumer's watermark."""
        return self._holding

    def poke(self) -> None:
        """A timer was stored: look again now rather than at the next planned wake-up."""
        super().poke()

    def round(self) -> bool:
        """`tick()`; after a round that claimed timers, look again at once: more may be due."""
        return bool(self.tick())

    def idle_wait(self) -> float:
        """`wait_after_empty_round()`."""
        return self.wait_after_empty_round()

    def round_failed(self, error: Exception) -> None:
        log.warning("scheduler round failed; will retry", extra={"error": repr(error)})

    def wait_after_empty_round(self) -> float:
        """Seconds to sleep after a round that claimed nothing: until the earliest pending due
        time, at most `max_sleep_s`; `contended_s` when timers were due already when the round
        claimed (another replica holds them all, skipped as locked), rather than at once."""
        with self._sessions() as session:
            due = timers.next_due(session=session)
        if due is None:
            return self._max_sleep_s
        if self._holding and self._claimed_at is not None and due <= self._claimed_at:
            return min(self._max_sleep_s, self._held_s)
        if self._claimed_at is not None and due <= self._claimed_at:
            return min(self._max_sleep_s, self._contended_s)
        # Due since the claim looked (or not yet due): look again then, no backoff.
        return min(self._max_sleep_s, max(0.0, (due - self._clock()).total_seconds()))

    def tick(self) -> int:
        """One round: send what is due now; returns how many timers it claimed."""
        self.rounds += 1
        with self._sessions() as session, session.begin():
            timers.lock_for_claim(session)
            now = self._claimed_at = self._clock()
            marks = self._watermarks(session)
            cutoff = now if marks is None else min(now, marks.highest() or now - _FOREVER)
            self._holding = cutoff < now
            claimed = timers.claim_due(cutoff, self._batch_size, session=session)
            if marks is not None:
                claimed = self._hold(claimed, marks, now)
            if not claimed:
                return 0
            if self._skip_recheck:
                due, stale = claimed, set[str]()
                withdrawn: list[StatusChange] = []
            else:
                due, withdrawn = _withdraw(claimed, now, session)
                stale = {t.notification_id for t in due if t.is_stale(now)}
            live = [t for t in due if t.notification_id not in stale]
            expired = timers.rows_of(list(stale), session=session)
            refused = self._publish(self._messages(live, expired, now, withdrawn), live, now)
            if refused:
                self._fail(refused, now, session)
                live = [t for t in live if t.notification_id not in refused]
            timers.set_state(
                [t.notification_id for t in live], timers.FIRED, now=now, session=session
            )
            timers.set_state(
                [r.notification_id for r in expired], timers.EXPIRED, now=now, session=session
            )
        self._record(live, expired, self._clock())
        return len(claimed)

    def _watermarks(self, session: Session) -> watermarks.Watermarks | None:
        if self._watermark_topic is None:
            return None
        return watermarks.read(self._watermark_topic, session=session)

    def _hold(
        self, claimed: list[DueTimer], marks: watermarks.Watermarks, now: datetime
    ) -> list[DueTimer]:
        """The claimed timers that may go now: past their deadline (they expire), or their
        partition is processed up to their due time; the others stay pending."""
        ready = [t for t in claimed if t.is_stale(now) or marks.allows(t.subject, t.due_at)]
        if len(ready) < len(claimed):
            self._holding = True
            self.held += len(claimed) - len(ready)
            self._metrics.held.inc(len(claimed) - len(ready))
        return ready

    def _publish(
        self, messages: list[OutgoingMessage], live: list[DueTimer], now: datetime
    ) -> dict[str, str]:
        """Publish a round; the timers whose request the broker refused for good, with why
        (the others were acknowledged). Retrying those would stop every later round."""
        try:
            self._producer.publish(messages)
        except MessageRejected as error:
            timer_of = {id(m): t.notification_id for m, t in zip(messages, live, strict=False)}
            refused = {timer_of[id(m)]: reason for m, reason in error.rejected if id(m) in timer_of}
            if len(refused) < len(error.rejected):
                # A status change the broker refused can never be sent either; keeping the
                # round would only block the timers behind it.
                log.error("status changes refused by the broker", extra={"error": str(error)})
            return refused
        return {}

    def _fail(self, refused: dict[str, str], now: datetime, session: Session) -> None:
        """Mark refused timers failed and report it on status.v1."""
        rows = timers.rows_of(list(refused), session=session)
        self._producer.publish(
            [
                OutgoingMessage(
                    topic=self._topics.status,
                    key=row.notification_id,
                    value=status_of(
                        row, Status.FAILED, at=now, detail=refused[row.notification_id][:1000]
                    )
                    .model_dump_json()
                    .encode(),
                )
                for row in rows
            ]
        )
        timers.set_state(list(refused), timers.FAILED, now=now, session=session)
        log.warning("reminders refused by the broker", extra={"failed": len(refused)})

    def _messages(
        self,
        live: list[DueTimer],
        expired: list[TimerRow],
        now: datetime,
        withdrawn: list[StatusChange],
    ) -> list[OutgoingMessage]:
        # The stored JSON is published as it is: validated when stored, no parse or dump here.
        topic = self._topics.notifications
        messages = [
            OutgoingMessage(topic=topic, key=t.citizen_id, value=t.payload.encode()) for t in live
        ]
        changes = [
            status_of(
                row, Status.SUPPRESSED, at=now, detail="its deadline passed before it was due"
            )
            for row in expired
        ]
        messages += [
            OutgoingMessage(
                topic=self._topics.status,
                key=change.notification_id,
                value=change.model_dump_json().encode(),
            )
            for change in changes + withdrawn
        ]
        return messages

    def _record(self, live: list[DueTimer], expired: list[TimerRow], now: datetime) -> None:
        for timer in live:
            self._metrics.lateness.observe((now - timers.as_utc(timer.due_at)).total_seconds())
        self._metrics.fired.inc(len(live))
        self._metrics.expired.inc(len(expired))
        if live or expired:
            log.info("reminders sent", extra={"fired": len(live), "expired": len(expired)})


def _withdraw(
    claimed: list[DueTimer], now: datetime, session: Session
) -> tuple[list[DueTimer], list[StatusChange]]:
    """Cancel the claimed timers whose rule is disabled or deleted, or was since they were
    stored (a withdrawal at a later version, even if the rule was enabled again); full rows
    are read only for those. Returns the timers still to send and the statuses."""
    rule_ids = {t.rule_id for t in claimed}
    gone = timers.withdrawn_rules(rule_ids, session=session)
    cut = withdrawals.cuts(rule_ids, session=session)
    dropped = [
        t.notification_id
        for t in claimed
        if t.rule_id in gone or t.rule_version < cut.get(t.rule_id, 0)
    ]
    if not dropped:
        return claimed, []
    timers.set_state(dropped, timers.CANCELLED, now=now, session=session)
    detail = "its rule was disabled or deleted before it was due"
    changes = [
        status_of(row, Status.CANCELLED, at=now, detail=detail)
        for row in timers.rows_of(dropped, session=session)
    ]
    gone_ids = set(dropped)
    return [t for t in claimed if t.notification_id not in gone_ids], changes
