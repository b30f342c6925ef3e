"""The lag gate's pieces: the subject's partition, the watermark table, the per-timer check."""

from datetime import UTC, datetime, timedelta

from kafka.partitioner.default import murmur2 as kafka_murmur2

from common.consumer import PartitionProgress
from common.db import make_engine, make_sessions
from services.rules import watermarks
from services.rules.config import Settings
from services.rules.main import migrate
from services.rules.watermarks import Watermarks, WatermarkWriter, partition_of

T = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)


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
