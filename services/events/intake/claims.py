"""One transaction for a group of requests: plan each, record the new events as `pending` with
one insert, count them against the daily caps; and, later, settle what the broker answered.

Every request stays all-or-nothing on its own: a request with a reused id (409), over its cap
(429) or beaten to a key by another process loses its rows in the same transaction, and the
other requests of the group are unaffected.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
from collections import ChainMap, Counter
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from common.fastjson import canonical_json
from common.kafka import OutgoingMessage
from schemas.events import CloudEvent
from services.events import flows, repository
from services.events.callbacks.decisions import agency_of
from services.events.errors import PayloadConflict
from services.events.flows import EventKey, Incoming, Stored
from services.events.intake import dialect_sql
from services.events.limits import DailyCap, utc_day
from services.events.models import PENDING

log = logging.getLogger(__name__)

CONTENT_TYPE_HEADER = ("content-type", b"application/cloudevents+json")


@dataclass(frozen=True, slots=True)
class Outcome:
    accepted: int
    duplicates: int
    ids: list[str]


class Answer(Protocol):
    """How the claim thread answers one request (only that thread ever answers it)."""

    def start(self) -> bool:
        """Called once before the request is claimed; False when its caller gave up."""
        ...

    def done(self) -> bool: ...

    def set_result(self, outcome: Outcome) -> None: ...

    def set_exception(self, error: BaseException) -> None: ...


class ThreadAnswer:
    """An answer a thread waits for: a `concurrent.futures.Future`."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: Future[Outcome] = Future()

    def start(self) -> bool:
        return self.future.set_running_or_notify_cancel()

    def done(self) -> bool:
        return self.future.done()

    def set_result(self, outcome: Outcome) -> None:
        self.future.set_result(outcome)

    def set_exception(self, error: BaseException) -> None:
        self.future.set_exception(error)


_Delivery = tuple["asyncio.Future[Outcome]", "Outcome | None", "BaseException | None"]


class Mailbox:
    """Answers bound for one event loop, delivered together: the claim thread answers a whole
    group at once, and the loop is woken once for it rather than once a request."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._pending: list[_Delivery] = []

    def post(self, delivery: _Delivery) -> None:
        with self._lock:
            self._pending.append(delivery)
            first = len(self._pending) == 1
        if first:  # later posts ride on the wake-up already scheduled
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
                self.loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for waiter, outcome, error in pending:
            if waiter.done():  # its caller gave up
                continue
            if error is not None:
                waiter.set_exception(error)
            elif outcome is not None:
                waiter.set_result(outcome)


class LoopAnswer:
    """An answer a coroutine awaits: an asyncio future, settled through a `Mailbox`.

    Cheaper than wrapping a thread future (no condition variable, no chained callbacks, one
    wake-up of the loop a group), which counts at thousands of requests a second."""

    __slots__ = ("_done", "_mailbox", "waiter")

    def __init__(self, mailbox: Mailbox) -> None:
        self._mailbox = mailbox
        self._done = False
        self.waiter: asyncio.Future[Outcome] = mailbox.loop.create_future()

    def start(self) -> bool:
        # A plain read of the waiter's state from this thread: at worst a request cancelled
        # right now is still claimed, and its answer dropped by the mailbox.
        return not self.waiter.cancelled()

    def done(self) -> bool:
        return self._done

    def set_result(self, outcome: Outcome) -> None:
        self._done = True
        self._mailbox.post((self.waiter, outcome, None))

    def set_exception(self, error: BaseException) -> None:
        self._done = True
        self._mailbox.post((self.waiter, None, error))


@dataclass(eq=False, slots=True)
class Ticket:
    """One request's events on their way through the batcher, and how to answer it."""

    incoming: list[Incoming]
    received_at: datetime
    deadline: float
    answer: Answer = field(default_factory=ThreadAnswer)
    not_before: float = 0.0
    new: list[Incoming] = field(default_factory=list)
    duplicates: int = 0
    messages: list[OutgoingMessage] = field(default_factory=list)

    @property
    def new_keys(self) -> list[EventKey]:
        return [item.key for item in self.new]

    def succeed(self) -> None:
        if self.answer.done():
            return
        if log.isEnabledFor(logging.INFO):
            accepted, duplicates = len(self.new), self.duplicates
            log.info("events accepted", extra={"accepted": accepted, "duplicates": duplicates})
        ids = [item.event.id for item in self.incoming]
        self.answer.set_result(Outcome(len(self.new), self.duplicates, ids))

    def fail(self, error: BaseException) -> None:
        if not self.answer.done():
            self.answer.set_exception(error)


@dataclass(slots=True)
class Claim:
    """What became of each request of a group."""

    publish: list[Ticket] = field(default_factory=list)  # new events pending: publish them
    answered: list[Ticket] = field(default_factory=list)  # nothing new: duplicates only
    waiting: list[Ticket] = field(default_factory=list)  # a key is another request's: retry
    failed: list[tuple[Ticket, Exception]] = field(default_factory=list)


def wire_message(
    topic: str, wire: dict[str, Any], subject: str, value: bytes | None = None
) -> OutgoingMessage:
    """The events.v1 record of an event: key = subject, value = structured CloudEvent JSON
    (`value`, when the caller already serialized `wire`)."""
    if value is None:
        value = canonical_json(wire)
    return OutgoingMessage(topic=topic, key=subject, value=value, headers=[CONTENT_TYPE_HEADER])


def incoming(event: CloudEvent, received_at: datetime) -> Incoming:
    """An event ready to be claimed: the hash of what the agency sent, and its wire form and
    record value (`time` defaulted to `received_at`), each computed once."""
    wire = event.to_wire()
    value = canonical_json(wire)
    digest = hashlib.sha256(value).hexdigest()
    if event.time is None:
        event = event.with_time(received_at)
        wire = event.to_wire()
        value = canonical_json(wire)
    return Incoming(event, digest, wire, value)


def claim(
    *,
    session: Session,
    tickets: Sequence[Ticket],
    topic: str,
    daily_cap: DailyCap | None,
    stale_before: datetime,
) -> Claim:
    """Claim the new events of every request in `tickets`, in the caller's transaction.

    Requests whose keys appear nowhere else in the group are inserted at once, without a
    lookup first (the common case: new events); a request with a key already in the table
    (a retry, a racer, a crash's leftover) gives its rows back and is planned against what is
    stored, together with the requests that share a key with another one of the group.
    """
    position = {id(ticket): index for index, ticket in enumerate(tickets)}
    fresh, others = _split(tickets)
    result = Claim()
    kept, beaten = _insert_fresh(session, fresh, topic)
    if beaten or others:
        planned = _plan(session, [*others, *beaten], result, stale_before)
        kept += _insert(session, planned, result, topic)
        kept.sort(key=lambda ticket: position[id(ticket)])  # the caps count in arrival order
    _count(session, kept, result, daily_cap)
    return result


def _split(tickets: Sequence[Ticket]) -> tuple[list[Ticket], list[Ticket]]:
    """The requests with events none of whose keys appears twice in the group, and the
    others (an empty batch is answered at once by the plan, as a request of duplicates)."""
    counts = Counter(item.key for ticket in tickets for item in ticket.incoming)
    fresh: list[Ticket] = []
    others: list[Ticket] = []
    for ticket in tickets:
        alone = bool(ticket.incoming) and all(counts[item.key] == 1 for item in ticket.incoming)
        (fresh if alone else others).append(ticket)
    return fresh, others


def _insert_fresh(
    session: Session, fresh: list[Ticket], topic: str
) -> tuple[list[Ticket], list[Ticket]]:
    """Insert every event of `fresh` as new: the requests all of whose rows went in, and
    those with a key the table already held (their rows are deleted again)."""
    for ticket in fresh:
        ticket.new, ticket.duplicates = ticket.incoming, 0
    inserted = _insert_rows(session, fresh, topic)
    if len(inserted) == sum(len(ticket.new) for ticket in fresh):
        return fresh, []
    kept, beaten = _keep_whole(session, fresh, inserted)
    for ticket in beaten:
        ticket.new, ticket.messages = [], []
    return kept, beaten


def _keep_whole(
    session: Session, tickets: list[Ticket], inserted: set[EventKey]
) -> tuple[list[Ticket], list[Ticket]]:
    """The requests all of whose new rows went in, and the others, whose rows that did go in
    are deleted again: a request is stored whole or not at all."""
    kept, beaten, undo = list[Ticket](), list[Ticket](), list[EventKey]()
    for ticket in tickets:
        keys = ticket.new_keys
        if all(key in inserted for key in keys):
            kept.append(ticket)
        else:
            undo += [key for key in keys if key in inserted]
            beaten.append(ticket)
    if undo:
        repository.delete_pending(session=session, keys=undo)
    return kept, beaten


def _plan(
    session: Session, tickets: list[Ticket], result: Claim, stale_before: datetime
) -> list[Ticket]:
    """Plan each request against what is stored: the requests with new events to insert."""
    keys = [item.key for ticket in tickets for item in ticket.incoming]
    stored = dialect_sql.stored_events(session=session, keys=keys)
    ours: dict[EventKey, Stored] = {}  # claimed by an earlier request of this group
    known = ChainMap(ours, stored)
    planned, stale = list[Ticket](), list[EventKey]()
    for ticket in tickets:
        try:
            plan = flows.plan(ticket.incoming, known)
        except PayloadConflict as conflict:
            result.failed.append((ticket, conflict))
            continue
        if plan.waiting:
            stale += plan.waiting
            result.waiting.append(ticket)
            continue
        ticket.new, ticket.duplicates = plan.new, plan.duplicates
        ours.update((item.key, Stored(item.payload_hash, PENDING)) for item in plan.new)
        (planned if plan.new else result.answered).append(ticket)
    if stale:
        # Forget pending rows left by a crashed process, so the waiting request's retry proceeds.
        repository.delete_pending(session=session, keys=stale, received_before=stale_before)
    return planned


def _insert_rows(session: Session, tickets: list[Ticket], topic: str) -> set[EventKey]:
    """Insert the new events of `tickets` and make their messages; the keys inserted."""
    for ticket in tickets:
        ticket.messages = [
            wire_message(
                topic,
                item.wire if item.wire is not None else item.event.to_wire(),
                item.event.subject,
                item.value,
            )
            for item in ticket.new
        ]
    groups = [(ticket.received_at, ticket.new) for ticket in tickets]
    return dialect_sql.insert_pending(session=session, groups=groups)


def _insert(session: Session, planned: list[Ticket], result: Claim, topic: str) -> list[Ticket]:
    """Insert the planned requests' rows; a request a racer beat to one key waits and retries."""
    inserted = _insert_rows(session, planned, topic)
    kept, beaten = _keep_whole(session, planned, inserted)
    result.waiting += beaten
    return kept


def _agencies(ticket: Ticket) -> list[str]:
    return [agency_of(item.event.source) for item in ticket.new]


def _count(session: Session, kept: list[Ticket], result: Claim, cap: DailyCap | None) -> None:
    """Count the kept requests against the daily caps; one over its cap loses its rows (429)."""
    if cap is None or not kept:
        result.publish += kept
        return
    verdicts = cap.reserve_each(
        session=session, requests=[(_agencies(ticket), ticket.received_at) for ticket in kept]
    )
    refused: list[EventKey] = []
    for ticket, verdict in zip(kept, verdicts, strict=True):
        if verdict is None:
            result.publish.append(ticket)
        else:
            result.failed.append((ticket, verdict))
            refused += ticket.new_keys
    if refused:
        repository.delete_pending(session=session, keys=refused)


def settle(
    *,
    session: Session,
    acknowledged: Sequence[Ticket],
    refused: Sequence[Ticket],
    daily_cap: DailyCap | None,
) -> None:
    """Mark what the broker acknowledged `accepted`; forget (and uncount) what it did not."""
    dialect_sql.mark_accepted(
        session=session, keys=[key for ticket in acknowledged for key in ticket.new_keys]
    )
    if not refused:
        return
    repository.delete_pending(
        session=session, keys=[key for ticket in refused for key in ticket.new_keys]
    )
    if daily_cap is None:
        return
    by_day: dict[str, tuple[list[str], datetime]] = {}
    for ticket in refused:
        agencies, _ = by_day.setdefault(utc_day(ticket.received_at), ([], ticket.received_at))
        agencies.extend(_agencies(ticket))
    for agencies, now in by_day.values():
        daily_cap.release(session=session, agencies=agencies, now=now)
