"""The accept protocol against a real database, with a publisher we control."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from common import db
from common.kafka import BrokerUnavailable, OutgoingMessage
from schemas.events import CloudEvent
from services.events import flows, repository
from services.events.errors import Unavailable
from services.events.flows import Incoming
from services.events.ingest import Ingestor
from services.events.main import migrate
from services.events.models import Event
from tests.events.conftest import make_event, make_settings


class FakePublisher:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.published: list[OutgoingMessage] = []

    def publish(self, messages):
        if self.fail:
            raise BrokerUnavailable("no broker")
        self.published += messages


@pytest.fixture
def sessions(database_url):
    migrate(make_settings("127.0.0.1:1", "x.", database_url))
    engine = db.make_engine(database_url)
    yield db.make_sessions(engine)
    engine.dispose()


def ingestor(sessions, publisher, **timing) -> Ingestor:
    values = {"wait_s": 3.0, "stale_s": 60.0, "retry_after_s": 5, **timing}
    return Ingestor(sessions=sessions, producer=publisher, topic="t.events.v1", **values)


def pending_row(sessions, event: CloudEvent, *, received_at: datetime) -> None:
    with sessions.begin() as session:
        item = Incoming(event.with_time(received_at), flows.payload_hash(event))
        repository.add_pending(session=session, items=[item], now=received_at)


def states(sessions) -> dict[str, str]:
    with sessions() as session:
        return {e.id: e.state for e in session.scalars(select(Event))}


def later(seconds: float, action) -> threading.Thread:
    thread = threading.Timer(seconds, action)
    thread.start()
    return thread


def test_a_duplicate_waits_for_the_pending_original_and_is_not_republished(sessions):
    event = CloudEvent.model_validate(make_event(id="e1"))
    pending_row(sessions, event, received_at=datetime.now(UTC))
    publisher = FakePublisher()

    def accept_original():
        with sessions.begin() as session:
            repository.mark_accepted(session=session, keys=[flows.key_of(event)])

    timer = later(0.3, accept_original)
    outcome = ingestor(sessions, publisher).accept([event])
    timer.join()

    assert (outcome.accepted, outcome.duplicates) == (0, 1)
    assert publisher.published == []


def test_an_original_that_failed_leaves_the_way_free(sessions):
    event = CloudEvent.model_validate(make_event(id="e2"))
    pending_row(sessions, event, received_at=datetime.now(UTC))
    publisher = FakePublisher()

    def release_original():
        with sessions.begin() as session:
            repository.delete_pending(session=session, keys=[flows.key_of(event)])

    timer = later(0.3, release_original)
    outcome = ingestor(sessions, publisher).accept([event])
    timer.join()

    assert (outcome.accepted, outcome.duplicates) == (1, 0)
    assert len(publisher.published) == 1
    assert states(sessions) == {"e2": "accepted"}


def test_a_pending_row_left_by_a_crash_is_taken_over(sessions):
    event = CloudEvent.model_validate(make_event(id="e3"))
    pending_row(sessions, event, received_at=datetime.now(UTC) - timedelta(minutes=5))
    publisher = FakePublisher()

    outcome = ingestor(sessions, publisher).accept([event])

    assert outcome.accepted == 1
    assert states(sessions) == {"e3": "accepted"}


def test_a_pending_original_that_never_settles_gives_503(sessions):
    event = CloudEvent.model_validate(make_event(id="e4"))
    pending_row(sessions, event, received_at=datetime.now(UTC))

    with pytest.raises(Unavailable):
        ingestor(sessions, FakePublisher(), wait_s=0.3).accept([event])


def test_nothing_is_kept_when_the_broker_does_not_acknowledge(sessions):
    events = [CloudEvent.model_validate(make_event(id=f"b{i}")) for i in range(3)]

    with pytest.raises(Unavailable) as raised:
        ingestor(sessions, FakePublisher(fail=True)).accept(events)

    assert raised.value.retry_after_s == 5
    assert states(sessions) == {}
