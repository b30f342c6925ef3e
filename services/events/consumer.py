"""The status.v1 and decisions.v1 consumers: status changes into the timeline tables, and the
rule engine's decision traces beside the events they explain."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from kafka.consumer.fetcher import ConsumerRecord
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from common.kafka import InvalidMessage
from schemas.decisions import Decision
from schemas.notifications import StatusChange
from services.events import timeline_store
from services.events.callbacks import store as callback_store

log = logging.getLogger(__name__)


def _utc(value: datetime) -> datetime:
    # Our producers send aware times; a naive one can only mean UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse_status(record: ConsumerRecord) -> StatusChange:
    """The StatusChange in a record; InvalidMessage when it can never be one."""
    if not record.value:
        raise InvalidMessage("empty status message")
    try:
        change = StatusChange.model_validate_json(record.value)
    except ValidationError as error:
        raise InvalidMessage(f"not a status change: {error}") from error
    scheduled = change.scheduled_for
    if change.at.tzinfo is not None and (scheduled is None or scheduled.tzinfo is not None):
        return change  # the usual case: nothing to normalise, no copy
    return change.model_copy(
        update={"at": _utc(change.at), "scheduled_for": _utc(scheduled) if scheduled else None}
    )


class StatusRecorder:
    """Handler for `common.consumer.ConsumerLoop`: parse in `handle`, write a batch in `flush`.

    New changes are queued for the agency's callback in the same transaction (the callback
    queue), so a change is recorded and queued together or not at all.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        on_recorded: Callable[[int], None] | None = None,
        on_queued: Callable[[int], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._on_recorded = on_recorded
        self._on_queued = on_queued
        self._clock = clock
        self._pending: list[StatusChange] = []

    def handle(self, record: ConsumerRecord) -> None:
        self._pending.append(parse_status(record))

    def flush(self) -> None:
        changes, self._pending = self._pending, []
        if not changes:
            return
        now = self._clock()
        with self._sessions.begin() as session:
            recorded = timeline_store.record_statuses(session=session, changes=changes, now=now)
            queued = callback_store.enqueue(session=session, changes=recorded, now=now)
        log.debug(
            "statuses recorded",
            extra={"recorded": len(recorded), "received": len(changes), "queued": queued},
        )
        if self._on_recorded is not None:
            self._on_recorded(len(recorded))
        if queued and self._on_queued is not None:
            self._on_queued(queued)


def parse_decision(record: ConsumerRecord) -> Decision:
    """The Decision in a record; InvalidMessage when it can never be one."""
    if not record.value:
        raise InvalidMessage("empty decision message")
    try:
        decision = Decision.model_validate_json(record.value)
    except ValidationError as error:
        raise InvalidMessage(f"not a decision: {error}") from error
    if decision.at.tzinfo is not None:
        return decision
    return decision.model_copy(update={"at": _utc(decision.at)})


class DecisionRecorder:
    """Handler for `common.consumer.ConsumerLoop`: each event's decision trace, stored in one
    transaction per batch (a redelivered trace replaces the stored one)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._pending: list[Decision] = []

    def handle(self, record: ConsumerRecord) -> None:
        self._pending.append(parse_decision(record))

    def flush(self) -> None:
        decisions, self._pending = self._pending, []
        if not decisions:
            return
        with self._sessions.begin() as session:
            stored = timeline_store.record_decisions(
                session=session, decisions=decisions, now=self._clock()
            )
        log.debug("decisions recorded", extra={"recorded": stored})
