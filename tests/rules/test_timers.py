"""Reminder timers end to end against a real broker, on SQLite and PostgreSQL.

Rules here count from the event `time` (or a datetime field) with offsets of a few seconds, so
"fires on time" is observable in a test.
"""

import json
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

from kafka import KafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from common.db import make_engine, make_sessions
from common.kafka import OutgoingMessage, Producer, ensure_topics
from schemas.notifications import NotificationRequest, StatusChange
from services.rules import models, timers
from services.rules.config import Settings
from services.rules.main import create_app, migrate
from services.rules.scheduler import Scheduler, SchedulerMetrics
from tests.rules.factories import ADMIN, event_body

TEMPLATE = {"locales": {"es": {"sms": "Recordatorio {{ notification.step }} de {{ subject }}"}}}
FOLLOW_UP = {
    "on": "case.opened",
    "schedule": {"relative_to": "time", "offsets": ["PT3S", "PT4S"]},
    "cancel_on": ["case.closed"],
    "channels": ["sms"],
    "template": "aviso",
}
DEADLINE = {
    "on": "case.deadline",
    "schedule": {"relative_to": "data.due_at", "offsets": ["-PT2S"]},
    "cancel_on": ["case.closed"],
    "channels": ["sms"],
    "template": "aviso",
}


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Harness:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = Producer(settings.bootstrap_servers, client_id="test")

    def publish(self, **fields) -> None:
        body = event_body(source="sede", **fields)
        self.producer.publish(
            [
                OutgoingMessage(
                    topic=self.settings.topics.events,
                    key=body["subject"],
                    value=json.dumps(body).encode(),
                )
            ]
        )

    def records(self, topic: str, *, until=lambda rs: True, timeout_s: float = 12.0):
        consumer = KafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        parts = [TopicPartition(topic, p) for p in range(self.settings.topic_partitions)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        found = []
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                for batch in consumer.poll(timeout_ms=200).values():
                    found += batch
                if until(found):
                    return found
                if time.monotonic() > deadline:
                    raise AssertionError(f"condition not met on {topic}: {len(found)} records")
        finally:
            consumer.close()

    def requests(self, **kwargs):
        records = self.records(self.settings.topics.notifications, **kwargs)
        return [(NotificationRequest.model_validate_json(r.value), r.timestamp) for r in records]

    def statuses(self, **kwargs):
        records = self.records(self.settings.topics.status, **kwargs)
        return [StatusChange.model_validate_json(r.value) for r in records]


def settings_for(broker, database_url: str, **extra) -> Settings:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    values = {
        "kafka_bootstrap": broker.bootstrap,
        "topic_prefix": prefix,
        "topic_partitions": 2,
        "env": "development",
        "admin_key": None,
        "database_url": database_url,
        "kafka_session_timeout_ms": 6000,
        "consumer_group_prefix": prefix,
        "default_timezone": "Europe/Madrid",
        "rules_scheduler_max_sleep_s": 1.0,
    }
    settings = Settings(**{**values, **extra})
    ensure_topics(settings.bootstrap_servers, settings.topics.all(), partitions=2)
    migrate(settings)
    return settings


def install(client: TestClient) -> None:
    assert client.put("/v1/templates/aviso", json=TEMPLATE, headers=ADMIN).status_code == 200
    for rule_id, rule in (("seguimiento", FOLLOW_UP), ("plazo", DEADLINE)):
        response = client.put(f"/v1/rules/{rule_id}", json=rule, headers=ADMIN)
        assert response.status_code == 200, response.text


def by_subject(items, subject):
    return [i for i in items if i[0].event.subject == subject]


def test_trigger_fire_cancel_and_retime(broker, database_url):
    settings = settings_for(broker, database_url)
    harness = Harness(settings)
    app = create_app(settings)
    with TestClient(app) as client:
        install(client)
        assert app.state.consumer.assigned.wait(30)
        now = datetime.now(UTC)
        # fires on time
        harness.publish(id="o1", type="case.opened", subject="case/1", time=stamp(now))
        # cancelled after it was scheduled
        harness.publish(id="o2", type="case.opened", subject="case/2", time=stamp(now))
        harness.publish(
            id="c2", type="case.closed", subject="case/2", time=stamp(now + timedelta(seconds=1))
        )
        # cancelled before its (late, out-of-order) trigger arrives
        harness.publish(
            id="c3", type="case.closed", subject="case/3", time=stamp(now + timedelta(seconds=1))
        )
        harness.publish(id="o3", type="case.opened", subject="case/3", time=stamp(now))
        # a deadline moved: the first plan is replaced by the second
        far, near = now + timedelta(seconds=60), now + timedelta(seconds=4)
        harness.publish(
            id="d1", type="case.deadline", subject="case/4", time=stamp(now), due_at=stamp(far)
        )
        later = stamp(now + timedelta(milliseconds=500))
        harness.publish(
            id="d2", type="case.deadline", subject="case/4", time=later, due_at=stamp(near)
        )

        sent = harness.requests(until=lambda rs: len(rs) >= 3)
        time.sleep(1.5)  # anything wrongly left pending would now be due too
        sent = harness.requests()
        statuses = harness.statuses()

    fired = {(r.event.subject, r.step): (r, ts) for r, ts in sent}
    assert set(fired) == {("case/1", "PT3S"), ("case/1", "PT4S"), ("case/4", "-PT2S")}
    assert len(sent) == 3  # nothing twice
    for request, published_ms in fired.values():
        assert request.scheduled_for is not None
        # it fired (above), and not before its due time (record timestamps are whole ms)
        assert published_ms >= int(request.scheduled_for.timestamp() * 1000), request.step
    assert fired[("case/4", "-PT2S")][0].event.id == "d2"
    assert fired[("case/1", "PT3S")][0].not_after is None  # escalation: due after its deadline
    assert fired[("case/4", "-PT2S")][0].not_after == near

    kinds = Counter((s.event.subject, s.event.id, s.status.value) for s in statuses)
    assert kinds[("case/1", "o1", "scheduled")] == 2
    assert kinds[("case/2", "o2", "scheduled")] == 2
    assert kinds[("case/2", "o2", "cancelled")] == 2
    assert not [s for s in statuses if s.event.subject == "case/3"]
    assert kinds[("case/4", "d1", "cancelled")] == 1
    assert kinds[("case/4", "d2", "scheduled")] == 1
    scheduled = [s for s in statuses if s.status == "scheduled"]
    assert all(s.scheduled_for is not None for s in scheduled)


def test_a_restart_with_timers_pending_loses_nothing(broker, database_url):
    settings = settings_for(broker, database_url)
    harness = Harness(settings)
    app = create_app(settings)
    with TestClient(app) as client:
        install(client)
        assert app.state.consumer.assigned.wait(30)
        now = datetime.now(UTC)
        harness.publish(id="r1", type="case.opened", subject="case/9", time=stamp(now))
        harness.statuses(until=lambda rs: len(rs) >= 2)  # both scheduled
    # the service is down now; it comes back (without its consumer) after the timers are due
    time.sleep(max(0.0, (now + timedelta(seconds=4.2) - datetime.now(UTC)).total_seconds()))
    assert harness.requests() == []
    # With its consumer: a reminder fires only once the engine processed what came before it.
    with TestClient(create_app(settings)):
        sent = harness.requests(until=lambda rs: len(rs) >= 2)
    assert sorted(r.step for r, _ in sent) == ["PT3S", "PT4S"]


def stored_timers(settings: Settings, count: int) -> list[str]:
    engine = make_engine(settings.database_url)
    due = datetime.now(UTC) - timedelta(seconds=1)
    ids = []
    with make_sessions(engine)() as session, session.begin():
        for n in range(count):
            body = event_body(id=f"bulk-{n}", subject=f"case/{n}")
            request = NotificationRequest.model_validate(
                {
                    "id": str(uuid.uuid4()),
                    "event": {**{k: body[k] for k in ("source", "id", "type", "subject")}},
                    "rule": {"id": "bulk", "version": 1},
                    "citizen": body["data"]["citizen"],
                    "channels": ["sms"],
                    "content": {"sms": {"body": "hola"}},
                    "locale": "es",
                    "scheduled_for": due,
                    "step": "PT1S",
                }
            )
            session.add(timers.timer_row(request, subject=f"case/{n}", event_time=due, now=due))
            ids.append(request.id)
    engine.dispose()
    return ids


def test_two_schedulers_never_fire_the_same_timer_twice(broker, database_url):
    settings = settings_for(broker, database_url)
    ids = stored_timers(settings, 400)
    engines = [make_engine(settings.database_url) for _ in range(2)]
    producers = [Producer(settings.bootstrap_servers, client_id=f"s{n}") for n in range(2)]
    schedulers = [
        Scheduler(
            sessions=make_sessions(engine),
            producer=producer,
            topics=settings.topics,
            metrics=SchedulerMetrics(CollectorRegistry()),
            batch_size=20,
        )
        for engine, producer in zip(engines, producers, strict=True)
    ]
    threads = [threading.Thread(target=s.run) for s in schedulers]
    for thread in threads:
        thread.start()
    try:
        harness = Harness(settings)
        sent = harness.requests(until=lambda rs: len(rs) >= len(ids))
        time.sleep(1.0)
        sent = harness.requests()
    finally:
        for scheduler in schedulers:
            scheduler.stop()
        for thread in threads:
            thread.join(10)
        for producer in producers:
            producer.close()
        for engine in engines:
            engine.dispose()
    counts = Counter(request.id for request, _ in sent)
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1
    assert all(s.rounds > 1 for s in schedulers)


def test_a_reminder_past_its_deadline_is_suppressed_not_sent(broker, database_url):
    settings = settings_for(broker, database_url)
    [nid] = stored_timers(settings, 1)
    engine = make_engine(settings.database_url)
    sessions = make_sessions(engine)
    with sessions() as session, session.begin():
        row = session.get(models.TimerRow, nid)
        assert row is not None
        row.not_after = datetime.now(UTC) - timedelta(milliseconds=10)
    producer = Producer(settings.bootstrap_servers, client_id="s")
    scheduler = Scheduler(
        sessions=sessions,
        producer=producer,
        topics=settings.topics,
        metrics=SchedulerMetrics(CollectorRegistry()),
    )
    assert scheduler.tick() == 1
    assert scheduler.tick() == 0
    harness = Harness(settings)
    [status] = harness.statuses(until=lambda rs: len(rs) >= 1)
    assert status.status == "suppressed" and "deadline" in (status.detail or "")
    assert harness.requests() == []
    with sessions() as session:
        assert session.get(models.TimerRow, nid).state == "expired"  # type: ignore[union-attr]
    producer.close()
    engine.dispose()


def test_a_stored_reminder_the_broker_refuses_fails_alone_and_never_blocks_the_others(
    broker, database_url
):
    settings = settings_for(broker, database_url)
    big, small = stored_timers(settings, 2)
    engine = make_engine(settings.database_url)
    sessions = make_sessions(engine)
    with sessions() as session, session.begin():
        # Stored before the size check existed (or under a larger limit): 1.2 MB to send.
        row = session.get(models.TimerRow, big)
        assert row is not None
        payload = dict(row.payload)
        payload["content"] = {"sms": {"body": "x" * 1_200_000}}
        row.payload = payload
    producer = Producer(settings.bootstrap_servers, client_id="s")
    scheduler = Scheduler(
        sessions=sessions,
        producer=producer,
        topics=settings.topics,
        metrics=SchedulerMetrics(CollectorRegistry()),
    )
    try:
        assert scheduler.tick() == 2
        assert scheduler.tick() == 0  # nothing left to retry
        harness = Harness(settings)
        [sent] = [r for r, _ in harness.requests(until=lambda rs: len(rs) >= 1)]
        [status] = harness.statuses(until=lambda rs: len(rs) >= 1)
        with sessions() as session:
            states = {nid: session.get(models.TimerRow, nid).state for nid in (big, small)}  # type: ignore[union-attr]
    finally:
        producer.close()
        engine.dispose()
    assert sent.id == small
    assert status.notification_id == big and status.status == "failed"
    assert "MessageSizeTooLarge" in (status.detail or "")
    assert states == {big: "failed", small: "fired"}
