"""A crash between the broker's acknowledgement and the mark: the reminder is sent again, never
lost (the duplicate carries the same notification id, which the notifier absorbs)."""

from __future__ import annotations

from collections import Counter

import pytest
from prometheus_client import CollectorRegistry

from common.db import make_engine, make_sessions
from common.kafka import Producer
from services.rules import models
from services.rules.scheduler import Scheduler, SchedulerMetrics
from tests.rules.test_timers import Harness, settings_for, stored_timers


class Killed(Exception):
    """The process died right after the broker acknowledged the round."""


class DiesAfterPublishing:
    """A producer that publishes, then dies before the caller can go on (once)."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.armed = True

    def publish(self, messages) -> None:
        self.producer.publish(messages)
        if self.armed:
            self.armed = False
            raise Killed


def test_a_crash_between_the_publish_and_the_mark_loses_nothing(broker, database_url):
    settings = settings_for(broker, database_url)
    ids = stored_timers(settings, 3)
    engine = make_engine(settings.database_url)
    sessions = make_sessions(engine)
    producer = Producer(settings.bootstrap_servers, client_id="s")
    scheduler = Scheduler(
        sessions=sessions,
        producer=DiesAfterPublishing(producer),  # type: ignore[arg-type]
        topics=settings.topics,
        metrics=SchedulerMetrics(CollectorRegistry()),
    )
    harness = Harness(settings)
    try:
        with pytest.raises(Killed):
            scheduler.tick()
        assert len(harness.requests(until=lambda rs: len(rs) >= 3)) == 3
        with sessions() as session:
            assert {session.get(models.TimerRow, i).state for i in ids} == {"pending"}  # type: ignore[union-attr]

        assert scheduler.tick() == 3  # the next round (or replica) sends them again
        assert scheduler.tick() == 0
        sent = harness.requests(until=lambda rs: len(rs) >= 6)
        with sessions() as session:
            assert {session.get(models.TimerRow, i).state for i in ids} == {"fired"}  # type: ignore[union-attr]
    finally:
        producer.close()
        engine.dispose()
    assert Counter(request.id for request, _ in sent) == dict.fromkeys(ids, 2)
