"""Disabled or deleted rules never fire, and cancellations survive a crash; SQLite and PostgreSQL.

A crash is simulated where it hurts: after the database commit that stores or cancels timers
and before the broker acknowledged the statuses (the rule engine's publish raises once, the
consumer loop redelivers the batch; or the admin API commits and no relay runs until later).
"""

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import yaml
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from starlette.testclient import TestClient

from avisa.admin import apply_documents, read_documents
from common.consumer import ConsumerConfig, ConsumerLoop
from common.db import make_engine, make_sessions
from common.kafka import BrokerUnavailable, OutgoingMessage, Producer
from schemas.notifications import NotificationRequest
from services.rules import models, repository, timers
from services.rules.config import Settings
from services.rules.consumer import Metrics, RulesHandler
from services.rules.main import create_app
from services.rules.rendering import Renderer
from services.rules.rulebook import RuleBook
from services.rules.scheduler import Scheduler, SchedulerMetrics
from services.rules.status_relay import StatusRelay
from services.rules.withdrawals import WithdrawalMetrics, Withdrawer
from tests.rules.factories import ADMIN, event_body
from tests.rules.test_timers import TEMPLATE, Harness, settings_for, stamp

LATER = {
    "on": "case.opened",
    "schedule": {"relative_to": "time", "offsets": ["P10D", "P20D"]},
    "cancel_on": ["case.closed"],
    "channels": ["sms"],
    "template": "aviso",
}
ONLY_API = {"rules_consumer_enabled": False, "rules_scheduler_enabled": False}


def install(client: TestClient, **rules: dict) -> None:
    assert client.put("/v1/templates/aviso", json=TEMPLATE, headers=ADMIN).status_code == 200
    for rule_id, rule in rules.items():
        response = client.put(f"/v1/rules/{rule_id}", json=rule, headers=ADMIN)
        assert response.status_code == 200, response.text


def states(settings: Settings, subject: str) -> dict[str, str]:
    engine = make_engine(settings.database_url)
    try:
        with make_sessions(engine)() as session:
            rows = session.scalars(
                select(models.TimerRow).where(models.TimerRow.subject == subject)
            )
            return {row.notification_id: row.state for row in rows}
    finally:
        engine.dispose()


def cancels(records) -> int:
    return sum(json.loads(r.value)["status"] == "cancelled" for r in records)


def counted(statuses, subject: str) -> Counter:
    return Counter(s.status.value for s in statuses if s.event.subject == subject)


def test_disabling_or_deleting_a_rule_cancels_its_pending_reminders(broker, database_url, tmp_path):
    settings = settings_for(broker, database_url)
    harness = Harness(settings)
    app = create_app(settings)
    with TestClient(app) as client:
        install(client, seguimiento=LATER, otro={**LATER, "on": "case.other"})
        assert app.state.consumer.assigned.wait(30)
        now = stamp(datetime.now(UTC))
        harness.publish(id="a1", type="case.opened", subject="case/a", time=now)
        harness.publish(id="b1", type="case.other", subject="case/b", time=now)
        harness.statuses(until=lambda rs: len(rs) >= 4)  # two reminders each, scheduled

        # disabled as `avisa rules apply -f` does it: a YAML file PUT through the admin API
        path = tmp_path / "seguimiento.yaml"
        path.write_text(yaml.safe_dump({"id": "seguimiento", **LATER, "enabled": False}))
        client.headers.update(ADMIN)
        assert apply_documents(client, read_documents([path])) == {
            "created": 0,
            "updated": 1,
            "unchanged": 0,
        }
        assert client.delete("/v1/rules/otro", headers=ADMIN).status_code == 204
        statuses = harness.statuses(until=lambda rs: cancels(rs) >= 4)
        # enabled again: the cancelled reminders stay cancelled
        assert client.put("/v1/rules/seguimiento", json=LATER, headers=ADMIN).status_code == 200
        assert app.state.outbox_relay.tick() == 0

    assert counted(statuses, "case/a") == {"scheduled": 2, "cancelled": 2}
    assert counted(statuses, "case/b") == {"scheduled": 2, "cancelled": 2}
    details = {s.event.subject: s.detail for s in statuses if s.status == "cancelled"}
    assert details["case/a"] == "rule seguimiento was disabled (version 2)"
    assert details["case/b"] == "rule otro was deleted"
    assert set(states(settings, "case/a").values()) == {"cancelled"}
    assert set(states(settings, "case/b").values()) == {"cancelled"}


def test_a_disable_committed_before_a_crash_still_publishes_its_statuses(broker, database_url):
    settings = settings_for(broker, database_url, rules_scheduler_enabled=False)
    harness = Harness(settings)
    app = create_app(settings)
    with TestClient(app) as client:
        install(client, seguimiento=LATER)
        assert app.state.consumer.assigned.wait(30)
        harness.publish(
            id="c1", type="case.opened", subject="case/c", time=stamp(datetime.now(UTC))
        )
        harness.statuses(until=lambda rs: len(rs) >= 2)
        response = client.put(
            "/v1/rules/seguimiento", json={**LATER, "enabled": False}, headers=ADMIN
        )
        assert response.status_code == 200
    # this process had no background workers: the withdrawal waits, committed, for whichever
    # replica cancels the timers and relays the statuses
    assert counted(harness.statuses(until=lambda rs: len(rs) >= 2), "case/c") == {"scheduled": 2}

    engine = make_engine(settings.database_url)
    producer = Producer(settings.bootstrap_servers, client_id="relay")
    relay = StatusRelay(sessions=make_sessions(engine), producer=producer, topics=settings.topics)
    withdrawer = Withdrawer(
        sessions=make_sessions(engine), metrics=WithdrawalMetrics(CollectorRegistry())
    )
    try:
        assert withdrawer.tick()
        assert set(states(settings, "case/c").values()) == {"cancelled"}
        assert relay.tick() == 2
        assert relay.tick() == 0
    finally:
        producer.close()
        engine.dispose()
    statuses = harness.statuses(until=lambda rs: len(rs) >= 4)
    assert counted(statuses, "case/c") == {"scheduled": 2, "cancelled": 2}


def due_timer(settings: Settings, rule_id: str, *, event_id: str) -> str:
    """A timer of `rule_id` due now, stored directly (as a replica with stale rules would)."""
    body = event_body(id=event_id, source="sede", subject=f"case/{event_id}")
    due = datetime.now(UTC) - timedelta(seconds=1)
    request = NotificationRequest.model_validate(
        {
            "id": str(uuid.uuid4()),
            "event": {k: body[k] for k in ("source", "id", "type", "subject")},
            "rule": {"id": rule_id, "version": 1},
            "citizen": body["data"]["citizen"],
            "channels": ["sms"],
            "content": {"sms": {"body": "hola"}},
            "locale": "es",
            "scheduled_for": due,
            "step": "PT1S",
        }
    )
    engine = make_engine(settings.database_url)
    with make_sessions(engine)() as session, session.begin():
        session.add(timers.timer_row(request, subject=body["subject"], event_time=due, now=due))
    engine.dispose()
    return request.id


def test_at_fire_time_a_withdrawn_rules_timer_is_cancelled_not_sent(broker, database_url):
    settings = settings_for(broker, database_url)
    with TestClient(create_app(settings.model_copy(update=ONLY_API))) as client:
        install(client, apagada=LATER, borrada=LATER, viva=LATER)
    ids = {
        rule: due_timer(settings, rule, event_id=f"e-{rule}")
        for rule in ("apagada", "borrada", "viva")
    }
    # the rules change behind the API's back, so only the fire-time check can catch it
    engine = make_engine(settings.database_url)
    sessions = make_sessions(engine)
    with sessions() as session, session.begin():
        rule = session.get(models.RuleRow, "apagada")
        assert rule is not None
        rule.enabled = False
        now = datetime.now(UTC)
        repository.remove("rule", "borrada", actor="test", now=now, session=session)
    producer = Producer(settings.bootstrap_servers, client_id="s")
    scheduler = Scheduler(
        sessions=sessions,
        producer=producer,
        topics=settings.topics,
        metrics=SchedulerMetrics(CollectorRegistry()),
    )
    try:
        assert scheduler.tick() == 3
        assert scheduler.tick() == 0
    finally:
        producer.close()
    harness = Harness(settings)
    statuses = harness.statuses(until=lambda rs: len(rs) >= 2)
    assert {s.notification_id: s.status.value for s in statuses} == {
        ids["apagada"]: "cancelled",
        ids["borrada"]: "cancelled",
    }
    assert [r.id for r, _ in harness.requests(until=lambda rs: len(rs) >= 1)] == [ids["viva"]]
    with sessions() as session:
        stored = {nid: session.get(models.TimerRow, nid).state for nid in ids.values()}  # type: ignore[union-attr]
    engine.dispose()
    assert stored == {
        ids["apagada"]: "cancelled",
        ids["borrada"]: "cancelled",
        ids["viva"]: "fired",
    }


class CrashingProducer(Producer):
    """Raises, sending nothing, on the first publish after `arm()` that carries a status."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.armed = threading.Event()
        self.crashes = 0

    def arm(self) -> None:
        self.armed.set()

    def publish(self, messages: Iterable[OutgoingMessage]) -> None:
        batch = list(messages)
        if self.armed.is_set() and any(".status." in m.topic for m in batch):
            self.armed.clear()
            self.crashes += 1
            raise BrokerUnavailable("simulated crash after the commit")
        super().publish(batch)


def engine_loop(settings: Settings, producer: Producer, sessions) -> ConsumerLoop:
    handler = RulesHandler(
        rulebook=RuleBook(sessions, refresh_interval_s=0.5),
        renderer=Renderer(default_locale="es", default_timezone="Europe/Madrid"),
        producer=producer,
        topics=settings.topics,
        metrics=Metrics(CollectorRegistry()),
        sessions=sessions,
        default_timezone="Europe/Madrid",
    )
    config = ConsumerConfig(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.group_id("rules"),
        topics=[settings.topics.events],
        deadletter_topic=settings.topics.deadletter,
        session_timeout_ms=6000,
    )
    return ConsumerLoop(config, handler, producer)


def test_statuses_survive_a_crash_between_the_commit_and_the_publish(broker, database_url):
    settings = settings_for(broker, database_url)
    with TestClient(create_app(settings.model_copy(update=ONLY_API))) as client:
        install(client, seguimiento=LATER, plazo={**LATER, "on": "case.deadline"})
    engine = make_engine(settings.database_url)
    producer = CrashingProducer(settings.bootstrap_servers, client_id="engine")
    loop = engine_loop(settings, producer, make_sessions(engine))
    thread = threading.Thread(target=loop.run)
    thread.start()
    harness = Harness(settings)
    try:
        assert loop.assigned.wait(30)
        now = datetime.now(UTC)
        producer.arm()  # the scheduling of case/s is committed, then its statuses "crash"
        harness.publish(id="s1", type="case.opened", subject="case/s", time=stamp(now))
        harness.statuses(until=lambda rs: len(rs) >= 2)
        producer.arm()  # the cancel of case/s is committed, then its statuses "crash"
        later = stamp(now + timedelta(seconds=1))
        harness.publish(id="s2", type="case.closed", subject="case/s", time=later)
        harness.statuses(until=lambda rs: len(rs) >= 4)
        # a re-timing: the replaced reminders' cancellations must survive too
        harness.publish(id="d1", type="case.deadline", subject="case/d", time=stamp(now))
        harness.statuses(until=lambda rs: len(rs) >= 6)
        producer.arm()
        harness.publish(id="d2", type="case.deadline", subject="case/d", time=later)
        statuses = harness.statuses(until=lambda rs: len(rs) >= 10)
    finally:
        loop.stop()
        thread.join(30)
        producer.close()
        engine.dispose()

    assert producer.crashes == 3
    assert counted(statuses, "case/s") == {"scheduled": 2, "cancelled": 2}
    cancelled = [s for s in statuses if s.event.subject == "case/s" and s.status == "cancelled"]
    assert {s.detail for s in cancelled} == {"cancelled by case.closed (event s2)"}
    replaced = [s for s in statuses if s.event.id == "d1" and s.status == "cancelled"]
    assert len(replaced) == 2 and {s.detail for s in replaced} == {"replaced by event d2"}
    assert Counter(s.event.id for s in statuses if s.status == "scheduled") == {
        "s1": 2,
        "d1": 2,
        "d2": 2,
    }
    assert set(states(settings, "case/s").values()) == {"cancelled"}
