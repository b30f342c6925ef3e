"""A withdrawn rule's timers are cancelled in the background, in chunks, across restarts; and
the scheduler backs off when other replicas hold every due timer. SQLite and PostgreSQL."""

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from common.db import make_engine, make_sessions
from common.db import migrate as migrate_database
from common.kafka import OutgoingMessage, Producer
from schemas.notifications import NotificationRequest
from schemas.topics import Topics
from services.rules import models, timers, withdrawals
from services.rules.main import MIGRATIONS, VERSION_TABLE, create_app
from services.rules.scheduler import Scheduler, SchedulerMetrics
from services.rules.withdrawals import WithdrawalMetrics, Withdrawer
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.rules.factories import ADMIN, event_body
from tests.rules.test_timers import settings_for
from tests.rules.test_withdrawal import LATER, ONLY_API, install


@pytest.fixture
def postgres_url() -> Iterator[str]:
    url = create_postgres_database()
    yield url
    drop_postgres_database(url)


PENDING_COUNT = 2_500
CHUNK = 1_000
DUE_NOW = [f"ffffffff-0000-4000-8000-00000000000{i}" for i in range(2)]  # sorted last
LEFT = "avisa_rules_withdrawal_timers_left"


class RecordingProducer(Producer):
    """Keeps what it is asked to publish; talks to no broker."""

    def __init__(self) -> None:
        super().__init__(["127.0.0.1:1"], client_id="recording")
        self.sent: list[OutgoingMessage] = []

    def publish(self, messages: Iterable[OutgoingMessage]) -> None:
        self.sent += list(messages)


def request(nid: str, rule_id: str, version: int, due: datetime) -> NotificationRequest:
    body = event_body(id=f"e-{nid}", source="sede", subject=f"case/{nid}")
    return NotificationRequest.model_validate(
        {
            "id": nid,
            "event": {k: body[k] for k in ("source", "id", "type", "subject")},
            "rule": {"id": rule_id, "version": version},
            "citizen": body["data"]["citizen"],
            "channels": ["sms"],
            "content": {"sms": {"body": "hola"}},
            "locale": "es",
            "scheduled_for": due,
            "step": "P10D",
        }
    )


def store(
    sessions: sessionmaker[Session],
    ids: list[str],
    *,
    version: int,
    due: datetime,
    rule_id: str = "seguimiento",
) -> None:
    """Pending timers of a rule, stored directly (as the rule engine would)."""
    now = datetime.now(UTC)
    with sessions() as session, session.begin():
        session.add_all(
            timers.timer_row(
                request(nid, rule_id, version, due),
                subject=f"case/{nid}",
                event_time=now,
                now=now,
            )
            for nid in ids
        )


def counts(sessions: sessionmaker[Session]) -> Counter:
    with sessions() as session:
        return Counter(session.scalars(select(models.TimerRow.state)))


def relayed(sessions: sessionmaker[Session]) -> list[dict]:
    with sessions() as session:
        rows = session.scalars(select(models.StatusOutboxRow.value))
        return [json.loads(value) for value in rows]


def worker(sessions: sessionmaker[Session]) -> tuple[Withdrawer, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = WithdrawalMetrics(registry)
    return Withdrawer(sessions=sessions, metrics=metrics, chunk=CHUNK), registry


def test_a_withdrawal_is_cancelled_in_chunks_and_resumes_after_a_restart(broker, database_url):
    settings = settings_for(broker, database_url)
    engine = make_engine(settings.database_url)
    sessions = make_sessions(engine)
    later = datetime.now(UTC) + timedelta(days=10)
    future = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(PENDING_COUNT)]
    with TestClient(create_app(settings.model_copy(update=ONLY_API))) as client:
        install(client, seguimiento=LATER)
        store(sessions, future, version=1, due=later)
        store(sessions, DUE_NOW, version=1, due=datetime.now(UTC) - timedelta(seconds=1))
        disabled = {**LATER, "enabled": False}
        assert client.put("/v1/rules/seguimiento", json=disabled, headers=ADMIN).status_code == 200
        # the answer came before any cancelling: this process runs no background worker
        assert counts(sessions) == {"pending": PENDING_COUNT + 2}
        assert relayed(sessions) == []
        # enabled again at once: the timers pending when it was disabled must not come back
        assert client.put("/v1/rules/seguimiento", json=LATER, headers=ADMIN).status_code == 200
    newer = "eeeeeeee-0000-4000-8000-000000000000"
    store(sessions, [newer], version=3, due=later)  # a trigger after it was enabled again

    first, registry = worker(sessions)
    assert first.tick()
    assert counts(sessions) == {"cancelled": CHUNK, "pending": PENDING_COUNT + 3 - CHUNK}
    assert registry.get_sample_value(LEFT) == PENDING_COUNT + 2 - CHUNK
    # the first worker "crashes" here; meanwhile the scheduler fires none of the old timers
    producer = RecordingProducer()
    scheduler = Scheduler(
        sessions=sessions,
        producer=producer,
        topics=settings.topics,
        metrics=SchedulerMetrics(CollectorRegistry()),
    )
    assert scheduler.tick() == 2
    assert [m.topic for m in producer.sent] == [settings.topics.status] * 2
    assert {json.loads(m.value)["status"] for m in producer.sent} == {"cancelled"}

    restarted_engine = make_engine(settings.database_url)
    second, registry = worker(make_sessions(restarted_engine))
    rounds = 0
    while second.tick():
        rounds += 1
        assert rounds <= 3
    restarted_engine.dispose()

    assert counts(sessions) == {"cancelled": PENDING_COUNT + 2, "pending": 1}
    statuses = relayed(sessions)
    engine.dispose()
    assert Counter(s["notification_id"] for s in statuses) == Counter(future)
    assert {(s["status"], s["detail"]) for s in statuses} == {
        ("cancelled", "rule seguimiento was disabled (version 2)")
    }
    assert registry.get_sample_value(LEFT) == 0


def test_deleting_a_rule_queues_its_withdrawal(broker, database_url):
    settings = settings_for(broker, database_url)
    engine = make_engine(settings.database_url)
    sessions = make_sessions(engine)
    ids = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(3)]
    with TestClient(create_app(settings.model_copy(update=ONLY_API))) as client:
        install(client, seguimiento=LATER)
        store(sessions, ids, version=1, due=datetime.now(UTC) + timedelta(days=1))
        assert client.delete("/v1/rules/seguimiento", headers=ADMIN).status_code == 204
        assert counts(sessions) == {"pending": 3}
    withdrawer, _ = worker(sessions)
    assert withdrawer.tick()
    assert not withdrawer.tick()
    assert counts(sessions) == {"cancelled": 3}
    assert {s["detail"] for s in relayed(sessions)} == {"rule seguimiento was deleted"}
    engine.dispose()


def test_only_a_rules_latest_finished_withdrawal_is_kept(database_url):
    engine, sessions = migrated(database_url)
    later = datetime.now(UTC) + timedelta(days=1)
    store(sessions, ["00000000-0000-4000-8000-00000000000c"], version=1, due=later)
    withdrawer, _ = worker(sessions)
    for version in (2, 4, 6):  # disabled three times, enabled again in between
        with sessions() as session, session.begin():
            withdrawals.record("seguimiento", version, detail="off", now=later, session=session)
        with sessions() as session, session.begin():  # another rule's finished job stays
            withdrawals.record("otra", version, detail="off", now=later, session=session)
        while withdrawer.tick():
            pass
    store(sessions, ["00000000-0000-4000-8000-00000000000d"], version=5, due=later)
    with sessions() as session:
        kept = session.execute(select(models.WithdrawalRow.rule_id, models.WithdrawalRow.version))
        assert sorted(kept) == [("otra", 6), ("seguimiento", 6)]
        assert withdrawals.cuts(["seguimiento"], session=session) == {"seguimiento": 6}
    assert counts(sessions) == {"cancelled": 1, "pending": 1}
    engine.dispose()


@pytest.mark.postgres
def test_two_replicas_work_on_different_withdrawals_at_once(postgres_url):
    # PostgreSQL only: SQLite has one writer at a time, its workers take turns.
    engine, sessions = migrated(postgres_url)
    later = datetime.now(UTC) + timedelta(days=1)
    first = [f"{i:08x}-0000-4000-8000-00000000000a" for i in range(3)]
    second = [f"{i:08x}-0000-4000-8000-00000000000b" for i in range(3)]
    store(sessions, first, version=1, due=later, rule_id="uno")
    store(sessions, second, version=1, due=later, rule_id="dos")
    with sessions() as session, session.begin():
        for rule_id in ("uno", "dos"):
            withdrawals.record(rule_id, 2, detail=f"{rule_id} off", now=later, session=session)
    other, _ = worker(sessions)
    with sessions() as held, held.begin():  # a replica in the middle of its chunk of "uno"
        assert withdrawals.cancel_chunk(CHUNK, now=later, session=held) == (3, True)
        assert other.tick()  # skips the locked job, does the next instead of waiting
        assert not other.tick()
        assert {s["notification_id"] for s in relayed(sessions)} == set(second)
    assert counts(sessions) == {"cancelled": 6}
    assert Counter(s["detail"] for s in relayed(sessions)) == {"uno off": 3, "dos off": 3}
    engine.dispose()


def migrated(database_url: str) -> tuple[Engine, sessionmaker[Session]]:
    migrate_database(database_url, script_location=MIGRATIONS, version_table=VERSION_TABLE)
    engine = make_engine(database_url)
    return engine, make_sessions(engine)


def scheduler_for(sessions: sessionmaker[Session], clock=None) -> Scheduler:
    return Scheduler(
        sessions=sessions,
        producer=RecordingProducer(),
        topics=Topics(prefix="t."),
        metrics=SchedulerMetrics(CollectorRegistry()),
        max_sleep_s=1.0,
        contended_s=0.03,
        **({"clock": clock} if clock else {}),
    )


@pytest.mark.postgres
def test_the_scheduler_backs_off_while_another_replica_holds_every_due_timer(postgres_url):
    # PostgreSQL only: SQLite has one claimer at a time, its claims never skip locked timers.
    engine, sessions = migrated(postgres_url)
    store(sessions, DUE_NOW, version=1, due=datetime.now(UTC) - timedelta(seconds=1))
    scheduler = scheduler_for(sessions)
    with sessions() as other, other.begin():
        held = timers.claim_due(datetime.now(UTC), 500, session=other)  # the other replica
        assert len(held) == 2
        waits: list[float | None] = []

        def wait(timeout: float | None = None) -> bool:  # the loop's sleep, counted, not slept
            waits.append(timeout)
            if len(waits) == 3:
                scheduler.stop()
            return False

        scheduler._wake.wait = wait  # type: ignore[method-assign,assignment]
        scheduler.run()
    assert scheduler.rounds == 3  # one claim per wait, no busy loop
    assert waits == [0.03, 0.03, 0.03]
    engine.dispose()


def test_a_normal_empty_round_sleeps_until_the_next_due_time(tmp_path):
    engine, sessions = migrated(f"sqlite:///{tmp_path / 'rules.db'}")
    start = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    moments = iter([start, start + timedelta(milliseconds=20)])
    scheduler = scheduler_for(sessions, clock=lambda: next(moments))
    store(sessions, DUE_NOW[:1], version=1, due=start + timedelta(milliseconds=10))
    assert scheduler.tick() == 0  # claimed at `start`: not yet due
    # due since the claim looked (not held by anyone): look again at once, no backoff
    assert scheduler.wait_after_empty_round() == 0.0
    engine.dispose()
