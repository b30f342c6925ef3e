"""Accepting events with group commit: many requests share one claim transaction, one
acknowledged produce and one `accepted` update.

Requests hand their validated events to the ingestor and wait for their own answer. A claim
thread takes everything queued, records the new events as `pending` in one transaction
(`claims.claim`) and passes them to a publish thread, which produces them together and waits
for the broker's acks. The claim thread then marks them `accepted` (in the same transaction as
its next claim) and only then answers each request. A group the broker did not acknowledge
loses its rows and answers 503, so nothing is ever half-accepted; a crash leaves only
`pending` rows, which a later request takes over once they are stale.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from common.kafka import MAX_REQUEST_BYTES, BrokerUnavailable, MessageRejected, OutgoingMessage
from schemas.events import CloudEvent
from services.events.errors import Unavailable
from services.events.intake import claims
from services.events.intake.claims import (
    Answer,
    Claim,
    LoopAnswer,
    Mailbox,
    Outcome,
    ThreadAnswer,
    Ticket,
)
from services.events.intake.record_limits import check_record_sizes, record_too_large
from services.events.limits import DailyCap

log = logging.getLogger(__name__)

__all__ = ["Ingestor", "Outcome", "Publishes"]

_POLL_S = 0.05  # how often a request waiting for another process's pending key looks again


class Publishes(Protocol):
    """Publishes messages and returns once the broker acknowledged all (BrokerUnavailable else)."""

    def publish(self, messages: Sequence[OutgoingMessage]) -> None: ...


@dataclass(frozen=True, slots=True)
class _Published:
    """The publish thread's answer for one claimed group."""

    tickets: list[Ticket]
    error: BaseException | None
    settles_group: bool = True


class Ingestor:
    """Runs the accept protocol for requests' validated events, many requests at a time.

    Its two threads start with the first request; `close()` stops them.
    """

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        producer: Publishes,
        topic: str,
        wait_s: float,
        stale_s: float,
        retry_after_s: int,
        daily_cap: DailyCap | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_group_events: int = 2000,
        max_in_flight: int = 2,
        publishers: int = 2,
        max_record_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self._sessions = sessions
        self._producer = producer
        self._topic = topic
        self._wait_s = wait_s
        self._stale = timedelta(seconds=stale_s)
        self._retry_after_s = retry_after_s
        self._daily_cap = daily_cap
        self._clock = clock
        self._max_group_events = max_group_events
        self._max_in_flight = max_in_flight
        self._publishers = publishers
        self._max_record_bytes = max_record_bytes
        self._inbox: queue.SimpleQueue[Ticket | _Published | None] = queue.SimpleQueue()
        self._outbox: queue.SimpleQueue[list[Ticket] | None] = queue.SimpleQueue()
        self._backlog: deque[Ticket] = deque()
        self._deferred: list[Ticket] = []
        self._in_flight = 0
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._lifecycle = threading.Lock()
        self._closed = False
        self._mailbox: Mailbox | None = None  # the event loop's, once a coroutine asked

    # --- the requests' side -------------------------------------------------------------------

    def submit(self, events: Sequence[CloudEvent]) -> Future[Outcome]:
        """Queue a request's events; the future answers with its outcome (or its error)."""
        answer = ThreadAnswer()
        self._queue(events, answer)
        return answer.future

    def accept(self, events: Sequence[CloudEvent]) -> Outcome:
        """Publish the new events of a request and count its duplicates (or raise); blocking."""
        return self.submit(events).result()

    async def accept_async(self, events: Sequence[CloudEvent], *, batch: bool = False) -> Outcome:
        """`accept` for the event loop: waits without holding a thread (`batch`: errors name
        the events by index)."""
        loop = asyncio.get_running_loop()
        mailbox = self._mailbox
        if mailbox is None or mailbox.loop is not loop:
            mailbox = self._mailbox = Mailbox(loop)
        answer = LoopAnswer(mailbox)
        self._queue(events, answer, batch=batch)
        return await answer.waiter

    def _queue(self, events: Sequence[CloudEvent], answer: Answer, *, batch: bool = False) -> None:
        received_at = self._clock()
        incoming = [claims.incoming(event, received_at) for event in events]
        check_record_sizes(incoming, self._topic, self._max_record_bytes, batch=batch)
        deadline = time.monotonic() + self._wait_s
        self._start()
        self._inbox.put(Ticket(incoming, received_at, deadline, answer))

    def _start(self) -> None:
        with self._lifecycle:
            if self._closed:
                raise Unavailable("the service is stopping", retry_after_s=self._retry_after_s)
            if self._threads:
                return
            self._threads = [
                threading.Thread(target=self._claim_loop, name="events-claim", daemon=True)
            ] + [
                threading.Thread(target=self._publish_loop, name="events-publish", daemon=True)
                for _ in range(self._publishers)
            ]
            for thread in self._threads:
                thread.start()

    def close(self, timeout_s: float = 15.0) -> None:
        """Answer what is queued, then stop the threads."""
        with self._lifecycle:
            self._closed = True
            threads = self._threads
        if threads:
            self._inbox.put(None)
            for thread in threads:
                thread.join(timeout_s)

    # --- the claim thread ---------------------------------------------------------------------

    def _claim_loop(self) -> None:
        try:
            while not (self._stopping and not self._backlog and not self._in_flight):
                acknowledged, refused = self._collect()
                due = self._due(retry_all=bool(acknowledged or refused))
                if not (acknowledged or refused or due):
                    continue
                try:
                    self._step(acknowledged, refused, due)
                except Exception as error:  # a bug must not leave every later request hanging
                    log.exception("ingest step failed")
                    for ticket in [*acknowledged, *(t for t, _ in refused), *due]:
                        ticket.fail(error)
        finally:
            for _ in range(self._publishers):
                self._outbox.put(None)
            for ticket in [*self._backlog, *self._deferred]:
                ticket.fail(self._unavailable("the service is stopping"))

    def _timeout(self) -> float | None:
        if self._backlog and self._in_flight < self._max_in_flight:
            return 0.0
        if self._deferred:
            return max(0.0, min(t.not_before for t in self._deferred) - time.monotonic())
        return None

    def _collect(self) -> tuple[list[Ticket], list[tuple[Ticket, BaseException]]]:
        """Take what arrived: new requests, and the publish thread's answers."""
        timeout = self._timeout()
        try:
            first = self._inbox.get(timeout=timeout) if timeout != 0.0 else self._inbox.get_nowait()
        except queue.Empty:
            return [], []
        items = [first]
        while True:
            try:
                items.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        acknowledged: list[Ticket] = []
        refused: list[tuple[Ticket, BaseException]] = []
        for item in items:
            if item is None:
                self._stopping = True
            elif isinstance(item, Ticket):
                self._backlog.append(item)
            else:
                self._in_flight -= 1 if item.settles_group else 0
                if item.error is None:
                    acknowledged += item.tickets
                else:
                    refused += [(ticket, item.error) for ticket in item.tickets]
        return acknowledged, refused

    def _due(self, *, retry_all: bool) -> list[Ticket]:
        """The requests to claim now: waiting ones whose time came (or all of them when a
        group just settled), and new ones while fewer than `max_in_flight` groups publish."""
        now = time.monotonic()
        due = [t for t in self._deferred if retry_all or t.not_before <= now]
        self._deferred = [t for t in self._deferred if not (retry_all or t.not_before <= now)]
        due = [ticket for ticket in due if not ticket.answer.done()]
        events = 0
        while (
            self._backlog
            and self._in_flight < self._max_in_flight
            and events < self._max_group_events
        ):
            ticket = self._backlog.popleft()
            if ticket.answer.start():  # False: the caller gave up
                due.append(ticket)
                events += len(ticket.incoming)
        return due

    def _step(
        self,
        acknowledged: list[Ticket],
        refused: list[tuple[Ticket, BaseException]],
        due: list[Ticket],
    ) -> None:
        """One transaction: settle what the broker answered, claim what is due."""
        try:
            with self._sessions() as session:
                claims.settle(
                    session=session,
                    acknowledged=acknowledged,
                    refused=[ticket for ticket, _ in refused],
                    daily_cap=self._daily_cap,
                )
                claimed = self._claim(session, due) if due else Claim()
                session.commit()
        except Exception as error:
            self._recover(acknowledged, refused, due, error)
            return
        self._answer_settled(acknowledged, refused)
        self._dispatch(claimed)

    def _claim(self, session: Session, due: list[Ticket]) -> Claim:
        return claims.claim(
            session=session,
            tickets=due,
            topic=self._topic,
            daily_cap=self._daily_cap,
            stale_before=self._clock() - self._stale,
        )

    def _recover(
        self,
        acknowledged: list[Ticket],
        refused: list[tuple[Ticket, BaseException]],
        due: list[Ticket],
        error: Exception,
    ) -> None:
        """The group's transaction failed: settle alone, then claim request by request, so
        that one request's unstorable value fails only that request."""
        if acknowledged or refused:
            try:
                with self._sessions.begin() as session:
                    claims.settle(
                        session=session,
                        acknowledged=acknowledged,
                        refused=[ticket for ticket, _ in refused],
                        daily_cap=self._daily_cap,
                    )
            except Exception as settle_error:
                log.warning("could not settle published events", extra={"error": str(settle_error)})
                for ticket in [*acknowledged, *(t for t, _ in refused)]:
                    ticket.fail(settle_error)
            else:
                self._answer_settled(acknowledged, refused)
        if len(due) <= 1 or isinstance(error, OperationalError | InterfaceError):
            for ticket in due:
                ticket.fail(error)
            return
        for ticket in due:
            self._step([], [], [ticket])

    def _answer_settled(
        self, acknowledged: list[Ticket], refused: list[tuple[Ticket, BaseException]]
    ) -> None:
        for ticket in acknowledged:
            ticket.succeed()
        for ticket, error in refused:
            if isinstance(error, BrokerUnavailable):
                ticket.fail(self._unavailable("the broker did not acknowledge; nothing accepted"))
            else:
                ticket.fail(error)
        if refused:
            log.warning("broker unavailable; events released", extra={"error": str(refused[0][1])})

    def _dispatch(self, claimed: Claim) -> None:
        for ticket in claimed.answered:
            ticket.succeed()
        for ticket, error in claimed.failed:
            ticket.fail(error)
        now = time.monotonic()
        for ticket in claimed.waiting:
            if now > ticket.deadline:
                busy = "the same event is being accepted by another request"
                ticket.fail(self._unavailable(busy))
            else:
                ticket.not_before = now + _POLL_S
                self._deferred.append(ticket)
        if claimed.publish:
            self._in_flight += 1
            self._outbox.put(claimed.publish)

    def _unavailable(self, detail: str) -> Unavailable:
        return Unavailable(detail, retry_after_s=self._retry_after_s)

    # --- the publish thread -------------------------------------------------------------------

    def _publish_loop(self) -> None:
        """Publish the claimed groups queued, together, and report each group's fate."""
        while True:
            group = self._outbox.get()
            if group is None:
                return
            groups, stopping = [group], False
            while not stopping:
                try:
                    queued = self._outbox.get_nowait()
                except queue.Empty:
                    break
                if queued is None:
                    stopping = True
                else:
                    groups.append(queued)
            self._publish(groups)
            if stopping:
                return

    def _publish(self, groups: list[list[Ticket]]) -> None:
        messages = [m for group in groups for ticket in group for m in ticket.messages]
        error: BaseException | None = None
        try:
            self._producer.publish(messages)
        except MessageRejected as refused:
            self._settle_rejected(groups, refused)
            return
        except Exception as failure:
            error = failure
        for group in groups:
            self._inbox.put(_Published(group, error))

    def _settle_rejected(self, groups: list[list[Ticket]], refused: MessageRejected) -> None:
        """Fail only the requests owning a record the producer refused; the others' records
        were acknowledged, so they are accepted.

        The size check at the door keeps such records out; this is the second line, so one
        request's record can never fail the group it shares."""
        owners = {id(m): ticket for group in groups for ticket in group for m in ticket.messages}
        culprits = {id(owners[id(message)]) for message, _ in refused.rejected}
        problem = record_too_large(self._max_record_bytes, [])
        for group in groups:
            dropped = [ticket for ticket in group if id(ticket) in culprits]
            if dropped:  # not counted as a group settled: what is kept settles it
                self._inbox.put(_Published(dropped, problem, settles_group=False))
            self._inbox.put(_Published([t for t in group if id(t) not in culprits], None))
