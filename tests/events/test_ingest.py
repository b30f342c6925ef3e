"""The accept protocol against a real database, with a publisher we control."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from common import db
from common.kafka import BrokerUnavailable, OutgoingMessage
from schemas.events import CloudEvent
from services.events import flows, limit_store, repository
from services.events.errors import PayloadConflict, Unavailable
from services.events.flows import Incoming
from services.events.intake.batcher import Ingestor
from services.events.limits import DailyCap, DailyCapReached, Limits, LimitsLookup, utc_day
from services.events.main import migrate
from services.events.models import Event
from tests.events.conftest import make_event, make_settings
from tests.events.rows import add_pending


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
        add_pending(session=session, items=[item], now=received_at)


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


# --- group commit: requests claimed, published and settled together -------------------------


class GatedPublisher(FakePublisher):
    """Holds the first publish until `gate` is set, so later requests queue up as one group."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__(fail)
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.batches: list[list[str]] = []

    def publish(self, messages):
        self.entered.set()
        assert self.gate.wait(10)
        self.batches.append([json.loads(m.value)["id"] for m in messages])
        super().publish(messages)


def grouped(sessions, publisher, requests, **options):
    """Submit `requests` (lists of events) while a first request is being published, so they
    are claimed as one group; returns each request's outcome or exception."""
    values = {"max_in_flight": 1, "publishers": 1, **options}
    accepting = ingestor(sessions, publisher, **values)
    first = accepting.submit([CloudEvent.model_validate(make_event())])
    assert publisher.entered.wait(5)
    futures = [accepting.submit(events) for events in requests]
    publisher.gate.set()
    first.result(timeout=10)
    results = []
    for future in futures:
        try:
            results.append(future.result(timeout=10))
        except Exception as error:
            results.append(error)
    accepting.close()
    return results


def used_today(sessions) -> int:
    with sessions() as session:
        day = utc_day(datetime.now(UTC))
        return limit_store.used(session=session, agency_id="demo", day=day)


def ev(**overrides) -> CloudEvent:
    return CloudEvent.model_validate(make_event(**overrides))


def test_one_conflict_in_a_group_rejects_only_its_own_request(sessions):
    taken = ev(id="g-taken")
    with sessions.begin() as session:
        item = Incoming(taken.with_time(datetime.now(UTC)), flows.payload_hash(taken))
        add_pending(session=session, items=[item], now=datetime.now(UTC))
        session.flush()
        repository.mark_accepted(session=session, keys=[flows.key_of(taken)])
    reused = ev(id="g-taken", subject="license/other")
    publisher = GatedPublisher()

    first, conflicting, last = grouped(
        sessions,
        publisher,
        [[ev(id="g-a1"), ev(id="g-a2")], [ev(id="g-b1"), reused], [ev(id="g-c1")]],
    )

    assert (first.accepted, first.duplicates) == (2, 0)
    assert isinstance(conflicting, PayloadConflict)
    assert (last.accepted, last.ids) == (1, ["g-c1"])
    assert publisher.batches[1] == ["g-a1", "g-a2", "g-c1"]  # one produce for the group
    found = states(sessions)
    assert "g-b1" not in found
    assert {found[i] for i in ("g-a1", "g-a2", "g-c1")} == {"accepted"}


def test_the_same_event_in_two_requests_of_a_group_is_published_once(sessions):
    event = ev(id="g-twice")
    publisher = GatedPublisher()

    one, other = grouped(sessions, publisher, [[event], [event]])

    assert sorted([(one.accepted, one.duplicates), (other.accepted, other.duplicates)]) == [
        (0, 1),
        (1, 0),
    ]
    assert sum(batch.count("g-twice") for batch in publisher.batches) == 1
    assert states(sessions)["g-twice"] == "accepted"


def test_a_reused_id_with_other_data_in_the_same_group_is_a_conflict(sessions):
    publisher = GatedPublisher()

    first, second = grouped(
        sessions, publisher, [[ev(id="g-same")], [ev(id="g-same", subject="license/x")]]
    )

    assert first.accepted == 1
    assert isinstance(second, PayloadConflict)


def test_the_daily_cap_is_counted_request_by_request_within_a_group(sessions):
    cap = DailyCap(LimitsLookup(sessions, defaults=Limits(1000, 3), ttl_s=60))
    publisher = GatedPublisher()

    fits, over, small = grouped(
        sessions,
        publisher,
        [[ev(id="c-1")], [ev(id="c-2"), ev(id="c-3")], [ev(id="c-4")]],
        daily_cap=cap,
    )

    # the first request of the run took 1 of 3: 1 more fits, 2 more do not, then 1 more fits
    assert fits.accepted == 1
    assert isinstance(over, DailyCapReached)
    assert small.accepted == 1
    assert set(states(sessions)) >= {"c-1", "c-4"}
    assert not {"c-2", "c-3"} & set(states(sessions))
    assert used_today(sessions) == 3


def test_a_group_the_broker_refuses_keeps_nothing_of_any_request(sessions):
    cap = DailyCap(LimitsLookup(sessions, defaults=Limits(1000, 100), ttl_s=60))
    accepting = ingestor(sessions, FakePublisher(fail=True), daily_cap=cap)
    futures = [accepting.submit([ev(), ev()]) for _ in range(5)]

    for future in futures:
        with pytest.raises(Unavailable):
            future.result(timeout=10)
    accepting.close()

    assert states(sessions) == {}
    assert used_today(sessions) == 0


def test_many_concurrent_requests_are_all_answered_and_stored_once(sessions):
    publisher = FakePublisher()
    accepting = ingestor(sessions, publisher)
    events = [ev(id=f"m-{i}") for i in range(200)]
    futures = [accepting.submit([event]) for event in events]
    futures += [accepting.submit(events[:50])]  # repeats of events in flight

    outcomes = [future.result(timeout=20) for future in futures]
    accepting.close()

    assert sum(o.accepted for o in outcomes) == 200
    assert outcomes[-1].duplicates == 50
    assert len(publisher.published) == 200
    assert set(states(sessions).values()) == {"accepted"}
