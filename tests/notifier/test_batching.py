"""A consumer batch taken on at once and written through the group-commit journal: each new
request sent once, the cap counted across the batch, one bad write failing alone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from common.db import make_engine, make_sessions
from common.kafka import OutgoingMessage
from schemas.notifications import StatusChange
from schemas.topics import Topics
from services.notifier import repository
from services.notifier.clients import Senders
from services.notifier.clients.outbox import OutboxEmail
from services.notifier.config import Settings
from services.notifier.consumer import NotificationHandler
from services.notifier.delivery.admission import Defaults
from services.notifier.delivery.journal import Journal, JournalClosed
from services.notifier.delivery.recording import ADD_ATTEMPT, JournalRecorder
from services.notifier.delivery.requests import Deliverer
from services.notifier.main import migrate
from services.notifier.models import Notification
from services.notifier.tokens import TokenKeys
from tests.notifier.factories import make_request
from tests.notifier.test_clients import twilio

TOPICS = Topics("t.")


@dataclass
class Record:
    """What the handler reads of a Kafka record."""

    value: bytes
    topic: str = TOPICS.notifications
    partition: int = 0
    offset: int = 0
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class CapturingProducer:
    def __init__(self) -> None:
        self.batches: list[list[OutgoingMessage]] = []

    def publish(self, messages: list[OutgoingMessage]) -> None:
        self.batches.append(list(messages))


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    migrate(Settings(database_url=database_url, env="development"))
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def journal(engine: Engine) -> Iterator[Journal]:
    journal = Journal(engine)
    yield journal
    journal.close()


def handler_for(engine, journal, providers, tmp_path, defaults: Defaults):
    sessions = make_sessions(engine)
    deliverer = Deliverer(
        sessions=sessions,
        journal=journal,
        senders=Senders(sms=twilio(providers.url), email=OutboxEmail(tmp_path)),
        public_url="http://127.0.0.1:8003",
        token_keys=TokenKeys(b"k"),
        defaults=defaults,
    )
    producer = CapturingProducer()
    handler = NotificationHandler(
        deliverer=deliverer,
        producer=producer,  # type: ignore[arg-type]
        topics=TOPICS,
        sessions=sessions,
        journal=journal,
        concurrency=4,
    )
    return handler, producer


def changes(messages: list[OutgoingMessage]) -> list[tuple[str, str]]:
    found = [StatusChange.model_validate_json(m.value) for m in messages]
    return sorted((c.notification_id, c.status.value) for c in found)


def test_a_batch_sends_each_request_once_and_a_redelivery_nothing(
    engine, journal, providers, tmp_path
):
    handler, producer = handler_for(engine, journal, providers, tmp_path, Defaults())
    requests = [
        make_request(channels=("sms",), citizen_id=f"C-{i}", phone=f"+3460011122{i}")
        for i in range(5)
    ]
    batch = [Record(r.model_dump_json().encode()) for r in requests]
    for record in [*batch, batch[0]]:  # the same request twice in a batch: taken on once
        handler.handle(record)  # type: ignore[arg-type]
    handler.flush()
    for record in batch:  # Kafka redelivers the whole batch (the commit was lost)
        handler.handle(record)  # type: ignore[arg-type]
    handler.flush()
    handler.close()

    assert len(providers.twilio_requests()) == 5
    [first] = producer.batches  # the redelivery had nothing left to publish
    assert changes(first) == sorted(
        (r.id, status) for r in requests for status in ("queued", "sent")
    )
    with make_sessions(engine)() as session:
        rows = session.scalars(select(Notification)).all()
    assert {(r.status, r.published_status) for r in rows} == {("sent", "sent")}


def test_the_daily_cap_counts_the_earlier_requests_of_the_same_batch(
    engine, journal, providers, tmp_path
):
    defaults = Defaults(zone="Europe/Madrid", quiet=None, sms_daily_cap=1)
    handler, producer = handler_for(engine, journal, providers, tmp_path, defaults)
    first, second = (make_request(channels=("sms",), citizen_id="C-cap") for _ in range(2))
    for request in (first, second):
        handler.handle(Record(request.model_dump_json().encode()))  # type: ignore[arg-type]
    handler.flush()
    handler.close()

    assert len(providers.twilio_requests()) == 1
    assert changes(producer.batches[0]) == sorted(
        [(first.id, "queued"), (first.id, "sent"), (second.id, "queued"), (second.id, "deferred")]
    )
    with make_sessions(engine)() as session:
        deferral = repository.get_deferral(session=session, notification_id=second.id)
        assert deferral is not None and deferral.reason == "daily SMS cap reached (1 SMS a day)"
        row = repository.get_notification(session=session, notification_id=second.id)
        assert row is not None and (row.detail or "").startswith("daily SMS cap reached")


def test_a_failing_write_fails_alone_and_the_batch_hears_of_it(engine, journal):
    sessions = make_sessions(engine)
    good = make_request()
    with sessions.begin() as session:
        repository.insert_notifications(session=session, requests=[good], now=datetime.now(UTC))
    recorder = JournalRecorder(journal)
    now = datetime.now(UTC)
    ids = [
        recorder.begin_attempt(notification_id=good.id, channel="sms", provider="twilio", now=now)
        for _ in range(3)
    ]
    with pytest.raises(IntegrityError):  # no such notification: the foreign key refuses it
        recorder.begin_attempt(notification_id="missing", channel="sms", provider="x", now=now)
    for attempt_id in ids:
        recorder.finish_attempt(
            attempt_id=attempt_id,
            sent=True,
            now=now,
            reference=f"SM{attempt_id}",
            error_code=None,
            error_detail=None,
        )
    orphan = {
        "notification_id": "missing",
        "channel": "sms",
        "provider": "x",
        "status": "sending",
        "provider_reference": None,
        "error_code": None,
        "error_detail": None,
        "at": now,
    }
    journal.queue(ADD_ATTEMPT, orphan, errors=recorder._errors)  # queued with the finishes
    with pytest.raises(IntegrityError):
        recorder.wait()

    assert len(set(ids)) == 3
    with sessions() as session:
        sent = repository.sent_attempts(session=session, notification_id=good.id)
    assert [a.id for a in sent] == sorted(ids)
    assert [a.provider_reference for a in sent] == [f"SM{i}" for i in sorted(ids)]


def test_a_closed_journal_refuses_writes(engine):
    journal = Journal(engine)
    journal.close()
    recorder = JournalRecorder(journal)
    with pytest.raises(JournalClosed):
        recorder.begin_attempt(
            notification_id="n", channel="sms", provider="twilio", now=datetime.now(UTC)
        )
