"""The lag gate's pieces: the subject's partition, the watermark table, the per-timer check."""

import json
import uuid
from datetime import UTC, datetime, timedelta

from kafka.partitioner.default import murmur2 as kafka_murmur2
from prometheus_client import CollectorRegistry

from common.consumer import PartitionProgress
from common.db import make_engine, make_sessions
from common.kafka import OutgoingMessage
from schemas.notifications import NotificationRequest
from schemas.topics import Topics
from services.rules import models, timers, watermarks
from services.rules.config import Settings
from services.rules.main import migrate
from services.rules.scheduler import Scheduler, SchedulerMetrics
from services.rules.watermarks import Watermarks, WatermarkWriter, partition_of
from tests.rules.factories import event_body

T = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def test_the_subject_s_partition_is_the_producer_s():
    for n in range(200):
        subject = f"license/B-{n:08d}"
        expected = (kafka_murmur2(subject.encode()) & 0x7FFFFFFF) % 6
        assert partition_of(subject, 6) == expected


def test_a_timer_waits_until_its_own_partition_is_processed_up_to_its_due_time():
    subject = "case/1"
    mine = partition_of(subject, 2)
    marks = Watermarks(until={mine: T, 1 - mine: T + timedelta(hours=1)}, partitions=2)
    assert marks.allows(subject, T)
    assert not marks.allows(subject, T + timedelta(milliseconds=1))
    assert marks.lowest() == T
    assert marks.highest() == T + timedelta(hours=1)


def test_without_a_watermark_nothing_is_allowed():
    assert not Watermarks(until={}, partitions=0).allows("case/1", T)
    subject = "case/1"
    other = 1 - partition_of(subject, 2)
    assert not Watermarks(until={other: T}, partitions=2).allows(subject, T - timedelta(days=1))


def test_the_writer_keeps_each_partition_s_highest_watermark(database_url):
    migrate(Settings(database_url=database_url))
    engine = make_engine(database_url)
    sessions = make_sessions(engine)
    writer = WatermarkWriter(sessions, clock=lambda: T)
    writer.record(
        [PartitionProgress("events", 0, 2, T, 0), PartitionProgress("events", 1, 2, T, 3)]
    )
    # an older report (a replica that lost the partition) does not move it back
    writer.record([PartitionProgress("events", 0, 2, T - timedelta(seconds=5), 4)])
    writer.record([PartitionProgress("events", 1, 2, T + timedelta(seconds=1), 0)])
    with sessions() as session:
        marks = watermarks.read("events", session=session)
        assert watermarks.read("other", session=session).partitions == 0
    engine.dispose()
    assert marks.partitions == 2
    assert marks.until == {0: T, 1: T + timedelta(seconds=1)}


class Recorder:
    """A producer that acknowledges everything and keeps what it was given."""

    def __init__(self) -> None:
        self.messages: list[OutgoingMessage] = []

    def publish(self, messages) -> None:
        self.messages += list(messages)


def _store(sessions, subject: str, *, due: datetime, not_after: datetime | None = None) -> str:
    body = event_body(id=f"e-{subject}", subject=subject)
    request = NotificationRequest.model_validate(
        {
            "id": str(uuid.uuid4()),
            "event": {k: body[k] for k in ("source", "id", "type", "subject")},
            "rule": {"id": "gate", "version": 1},
            "citizen": body["data"]["citizen"],
            "channels": ["sms"],
            "content": {"sms": {"body": "hola"}},
            "locale": "es",
            "scheduled_for": due,
            "not_after": not_after,
            "step": "P0D",
        }
    )
    with sessions() as session, session.begin():
        session.add(timers.timer_row(request, subject=subject, event_time=due, now=due))
    return request.id


def _subjects_on(partitions: int) -> list[str]:
    """One subject per partition, in partition order."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < partitions:
        found.setdefault(partition_of(f"case/{n}", partitions), f"case/{n}")
        n += 1
    return [found[p] for p in range(partitions)]


def test_the_scheduler_fires_what_its_partition_allows_and_holds_the_rest(database_url):
    migrate(Settings(database_url=database_url))
    engine = make_engine(database_url)
    sessions = make_sessions(engine)
    topics = Topics(prefix="gate.")
    now = T + timedelta(minutes=5)
    ahead, behind = _subjects_on(2)
    fires = _store(sessions, ahead, due=T)
    waits = _store(sessions, behind, due=T)
    expires = _store(sessions, behind, due=T, not_after=T + timedelta(minutes=1))
    WatermarkWriter(sessions, clock=lambda: now).record(
        [
            PartitionProgress(topics.events, partition_of(ahead, 2), 2, T, 0),
            PartitionProgress(topics.events, partition_of(behind, 2), 2, T - SECOND, 7),
        ]
    )
    producer = Recorder()
    scheduler = Scheduler(
        sessions=sessions,
        producer=producer,  # type: ignore[arg-type]
        topics=topics,
        metrics=SchedulerMetrics(CollectorRegistry()),
        clock=lambda: now,
        watermark_topic=topics.events,
    )
    assert scheduler.tick() == 2  # one fired, one expired (past its deadline, held or not)
    assert scheduler.held == 1 and scheduler.holding
    with sessions() as session:
        states = {i: session.get(models.TimerRow, i).state for i in (fires, waits, expires)}  # type: ignore[union-attr]
    engine.dispose()
    assert states == {fires: "fired", waits: "pending", expires: "expired"}
    sent = [m for m in producer.messages if m.topic == topics.notifications]
    assert [json.loads(m.value)["id"] for m in sent] == [fires]
    assert scheduler.wait_after_empty_round() <= 0.1  # looks again soon, not after 1 s


def test_without_any_watermark_the_scheduler_claims_nothing(database_url):
    migrate(Settings(database_url=database_url))
    engine = make_engine(database_url)
    sessions = make_sessions(engine)
    topics = Topics(prefix="none.")
    waits = _store(sessions, "case/1", due=T)
    scheduler = Scheduler(
        sessions=sessions,
        producer=Recorder(),  # type: ignore[arg-type]
        topics=topics,
        metrics=SchedulerMetrics(CollectorRegistry()),
        clock=lambda: T + timedelta(hours=1),
        watermark_topic=topics.events,
    )
    assert scheduler.tick() == 0
    assert scheduler.holding
    with sessions() as session:
        assert session.get(models.TimerRow, waits).state == "pending"  # type: ignore[union-attr]
    engine.dispose()
