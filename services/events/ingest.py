"""Accepting events: deduplicate, record as pending, publish with acks, then mark accepted.

Nothing is ever half-accepted: rows are `pending` while the broker is asked, and deleted again
when it does not acknowledge, so the agency's retry starts from a clean slate.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from common.kafka import BrokerUnavailable, OutgoingMessage
from schemas.events import CloudEvent
from services.events import flows, repository
from services.events.callbacks import agency_of
from services.events.errors import Unavailable
from services.events.flows import EventKey, Incoming, Plan
from services.events.limits import DailyCap, DailyCapReached

log = logging.getLogger(__name__)

CONTENT_TYPE_HEADER = ("content-type", b"application/cloudevents+json")
_POLL_S = 0.05


class Publishes(Protocol):
    """Publishes messages and returns once the broker acknowledged all (BrokerUnavailable else)."""

    def publish(self, messages: Sequence[OutgoingMessage]) -> None: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    accepted: int
    duplicates: int
    ids: list[str]


def wire_message(topic: str, event: CloudEvent) -> OutgoingMessage:
    """The events.v1 record of an event: key = subject, value = structured CloudEvent JSON."""
    value = json.dumps(event.to_wire(), ensure_ascii=False, separators=(",", ":")).encode()
    return OutgoingMessage(
        topic=topic, key=event.subject, value=value, headers=[CONTENT_TYPE_HEADER]
    )


def _agencies(items: Sequence[Incoming]) -> list[str]:
    return [agency_of(item.event.source) for item in items]


class Ingestor:
    """Runs the accept protocol for one request's validated events (blocking; threadpool)."""

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
    ) -> None:
        self._sessions = sessions
        self._producer = producer
        self._topic = topic
        self._wait_s = wait_s
        self._stale = timedelta(seconds=stale_s)
        self._retry_after_s = retry_after_s
        self._daily_cap = daily_cap
        self._clock = clock

    def accept(self, events: Sequence[CloudEvent]) -> Outcome:
        """Publish the new events of a request and count its duplicates (or raise)."""
        received_at = self._clock()
        incoming = [
            Incoming(event.with_time(received_at), flows.payload_hash(event)) for event in events
        ]
        plan = self._claim(incoming, received_at)
        self._publish(plan.new, received_at)
        ids = [item.event.id for item in incoming]
        log.info(
            "events accepted", extra={"accepted": len(plan.new), "duplicates": plan.duplicates}
        )
        return Outcome(accepted=len(plan.new), duplicates=plan.duplicates, ids=ids)

    def _claim(self, incoming: Sequence[Incoming], received_at: datetime) -> Plan:
        """Insert the new events as `pending`; wait for keys another request is publishing."""
        keys = [item.key for item in incoming]
        deadline = time.monotonic() + self._wait_s
        while True:
            with self._sessions() as session:
                plan = flows.plan(incoming, repository.stored_events(session=session, keys=keys))
                if plan.waiting:
                    self._drop_stale(session, plan.waiting)
                elif self._insert(session, plan.new, received_at):
                    return plan
            if time.monotonic() > deadline:
                raise Unavailable(
                    "the same event is being accepted by another request",
                    retry_after_s=self._retry_after_s,
                )
            time.sleep(_POLL_S)

    def _insert(self, session: Session, new: Sequence[Incoming], received_at: datetime) -> bool:
        """True when every new event is now ours (pending, counted against the daily cap);
        False when a racer got one first. DailyCapReached when over the cap (nothing kept)."""
        try:
            repository.add_pending(session=session, items=new, now=received_at)
            session.flush()
            if self._daily_cap is not None and new:
                self._daily_cap.reserve(session=session, agencies=_agencies(new), now=received_at)
            session.commit()
        except IntegrityError:
            session.rollback()
            return False
        except DailyCapReached:
            session.rollback()
            raise
        return True

    def _drop_stale(self, session: Session, keys: Sequence[EventKey]) -> None:
        """Forget pending rows left by a crashed request, so the agency's retry can proceed."""
        before = self._clock() - self._stale
        if repository.delete_pending(session=session, keys=keys, received_before=before):
            session.commit()

    def _publish(self, new: Sequence[Incoming], received_at: datetime) -> None:
        if not new:
            return
        keys = [item.key for item in new]
        try:
            self._producer.publish([wire_message(self._topic, item.event) for item in new])
        except Exception as error:
            with self._sessions.begin() as session:
                repository.delete_pending(session=session, keys=keys)
                if self._daily_cap is not None:
                    self._daily_cap.release(
                        session=session, agencies=_agencies(new), now=received_at
                    )
            if not isinstance(error, BrokerUnavailable):
                raise
            log.warning("broker unavailable; events released", extra={"error": str(error)})
            raise Unavailable(
                "the broker did not acknowledge; nothing was accepted",
                retry_after_s=self._retry_after_s,
            ) from error
        with self._sessions.begin() as session:
            repository.mark_accepted(session=session, keys=keys)
