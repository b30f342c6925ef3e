"""The consumer loop against a real broker: commit last, dead letters, transient retries."""

import json
import sqlite3
import threading
import time

from kafka import KafkaConsumer
from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from sqlalchemy.exc import InterfaceError, OperationalError

from common.consumer import ConsumerConfig, ConsumerLoop
from common.failures import is_transient
from common.kafka import (
    BrokerUnavailable,
    InvalidMessage,
    MessageRejected,
    OutgoingMessage,
    Producer,
    ensure_topics,
)
from common.runtime import Worker
from schemas.topics import Topics


class Recorder:
    def __init__(self, fail_times: int = 0) -> None:
        self.seen: list[int] = []
        self.fail_times = fail_times
        self.lock = threading.Lock()

    def handle(self, record) -> None:
        value = json.loads(record.value)
        if value == "poison":
            raise InvalidMessage("not a number")
        if self.fail_times:
            self.fail_times -= 1
            raise ConnectionError("database is down")
        with self.lock:
            self.seen.append(value)

    def flush(self) -> None:
        return


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def start_loop(broker, topics: Topics, handler, producer):
    config = ConsumerConfig(
        bootstrap_servers=[broker.bootstrap],
        group_id=f"g-{topics.prefix}",
        topics=[topics.events],
        deadletter_topic=topics.deadletter,
        session_timeout_ms=6000,
    )
    loop = ConsumerLoop(config, handler, producer)
    worker = Worker("test-consumer", loop.run, loop.stop)
    worker.start()
    assert loop.assigned.wait(30)
    return worker


def publish(producer: Producer, topic: str, values) -> None:
    producer.publish(
        [
            OutgoingMessage(topic=topic, key=str(i), value=json.dumps(v).encode())
            for i, v in enumerate(values)
        ]
    )


def test_poison_goes_to_dead_letter_and_the_rest_is_processed(broker, topic_prefix):
    topics = Topics(topic_prefix)
    ensure_topics([broker.bootstrap], topics.all(), partitions=1)
    producer = Producer([broker.bootstrap], client_id="test")
    handler = Recorder()
    worker = start_loop(broker, topics, handler, producer)
    try:
        publish(producer, topics.events, [1, "poison", 2, 3])
        assert wait_for(lambda: handler.seen == [1, 2, 3])
    finally:
        worker.stop()
    dead = KafkaConsumer(
        topics.deadletter,
        bootstrap_servers=broker.bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    records = list(dead)
    dead.close()
    producer.close()
    assert [json.loads(r.value) for r in records] == ["poison"]
    headers = dict(records[0].headers)
    assert headers["avisa-dlq-topic"] == topics.events.encode()
    assert headers["avisa-dlq-error"] == b"not a number"


def test_transient_failures_are_retried_without_loss_and_offsets_committed(broker, topic_prefix):
    topics = Topics(topic_prefix)
    ensure_topics([broker.bootstrap], topics.all(), partitions=1)
    producer = Producer([broker.bootstrap], client_id="test")
    handler = Recorder(fail_times=2)
    worker = start_loop(broker, topics, handler, producer)
    try:
        publish(producer, topics.events, list(range(10)))
        assert wait_for(lambda: sorted(set(handler.seen)) == list(range(10)))
    finally:
        worker.stop()
    # A second consumer of the same group starts after the committed offsets: nothing again.
    second = Recorder()
    worker = start_loop(broker, topics, second, producer)
    try:
        publish(producer, topics.events, [99])
        assert wait_for(lambda: second.seen == [99])
    finally:
        worker.stop()
        producer.close()


def dead_letters(broker, topics: Topics, count: int, timeout_s: float = 10.0):
    """The first `count` records of the dead-letter topic, read until they are there."""
    dead = KafkaConsumer(
        topics.deadletter,
        bootstrap_servers=broker.bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=500,
    )
    records: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < count and time.monotonic() < deadline:
            records += list(dead)
    finally:
        dead.close()
    return records


class Forwarder:
    """Collects values in `handle`, publishes them to `out` in `flush` (like the rule engine):
    `"overflow"` fails in `handle` as a date would, `"big"` makes an output too big to send."""

    def __init__(self, producer: Producer, out: str, *, down: int = 0) -> None:
        self.producer = producer
        self.out = out
        self.down = down
        self.pending: list[OutgoingMessage] = []
        self.flushed: list[object] = []
        self.flushes = 0
        self.discarded = 0

    def handle(self, record) -> None:
        value = json.loads(record.value)
        if self.down:
            self.down -= 1
            raise OperationalError("SELECT 1", {}, Exception("database is down"))
        if value == "overflow":
            raise OverflowError("date value out of range")
        size = 2_000_000 if value == "big" else 10
        self.pending.append(
            OutgoingMessage(topic=self.out, value=json.dumps([value, "x" * size]).encode())
        )

    def flush(self) -> None:
        self.flushes += 1
        messages, self.pending = self.pending, []
        self.producer.publish(messages)
        self.flushed += [json.loads(m.value)[0] for m in messages]

    def discard(self) -> None:
        self.pending.clear()
        self.discarded += 1


def test_a_message_that_fails_for_good_is_dead_lettered_and_the_others_go_through_at_once(
    broker, topic_prefix
):
    topics = Topics(topic_prefix)
    ensure_topics([broker.bootstrap], topics.all(), partitions=1)
    producer = Producer([broker.bootstrap], client_id="test")
    handler = Forwarder(producer, topics.notifications)
    worker = start_loop(broker, topics, handler, producer)
    try:
        started = time.monotonic()
        publish(producer, topics.events, [1, "overflow", 2, "big", 3])
        # No backoff for a failure that no retry can fix: the others are out promptly.
        assert wait_for(lambda: {1, 2, 3} <= set(handler.flushed), timeout=3.0)
        assert time.monotonic() - started < 3.0
        records = dead_letters(broker, topics, 2)
    finally:
        worker.stop()
        producer.close()
    assert [json.loads(r.value) for r in records] == ["overflow", "big"]
    errors = [dict(r.headers)["avisa-dlq-error"].decode() for r in records]
    assert errors[0] == "OverflowError: date value out of range"
    assert errors[1].startswith("MessageRejected: ") and "MessageSizeTooLarge" in errors[1]
    headers = dict(records[1].headers)
    assert headers["avisa-dlq-topic"] == topics.events.encode()
    assert headers["avisa-dlq-partition"] == b"0"
    assert headers["avisa-dlq-offset"] == b"3"
    assert "big" not in handler.flushed and "overflow" not in handler.flushed
    assert handler.discarded >= 1


def test_a_database_outage_is_retried_and_dead_letters_nothing(broker, topic_prefix):
    topics = Topics(topic_prefix)
    ensure_topics([broker.bootstrap], topics.all(), partitions=1)
    producer = Producer([broker.bootstrap], client_id="test")
    handler = Forwarder(producer, topics.notifications, down=3)
    worker = start_loop(broker, topics, handler, producer)
    try:
        publish(producer, topics.events, [1, 2, 3])
        assert wait_for(lambda: handler.flushed == [1, 2, 3])
        assert handler.down == 0
        publish(producer, topics.events, ["overflow"])  # the dead-letter topic works
        [record] = dead_letters(broker, topics, 1)
    finally:
        worker.stop()
        producer.close()
    assert json.loads(record.value) == "overflow"


def test_which_failures_are_transient():
    database_down = OperationalError("SELECT 1", {}, Exception("connection refused"))
    assert is_transient(database_down)
    assert is_transient(InterfaceError("SELECT 1", {}, Exception("closed")))
    assert is_transient(BrokerUnavailable("no ack"))
    assert is_transient(ConnectionResetError())
    assert is_transient(KafkaTimeoutError())
    wrapped = RuntimeError("could not store")
    wrapped.__cause__ = database_down
    assert is_transient(wrapped)
    assert is_transient(sqlite3.OperationalError("database is locked"))
    assert not is_transient(sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert not is_transient(OverflowError("date value out of range"))
    assert not is_transient(RecursionError())
    assert not is_transient(ValueError("year 0 is out of range"))
    assert not is_transient(InvalidMessage("not JSON"))
    assert not is_transient(MessageSizeTooLargeError())
    message = OutgoingMessage(topic="t", value=b"x")
    assert not is_transient(MessageRejected([(message, "too large")]))


class RefusesLarge:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def handle(self, record) -> None:
        if len(record.value) > 1000:
            raise InvalidMessage("too long to read: " + "!" * 2000)
        self.seen.append(json.loads(record.value))

    def flush(self) -> None:
        return


def test_a_dead_letter_too_big_to_park_whole_is_parked_without_its_value(broker, topic_prefix):
    topics = Topics(topic_prefix)
    ensure_topics([broker.bootstrap], topics.all(), partitions=1)
    producer = Producer([broker.bootstrap], client_id="test")
    handler = RefusesLarge()
    worker = start_loop(broker, topics, handler, producer)
    try:
        # Just under the client's limit, so the original plus the dead letter's headers is over.
        huge = json.dumps("x" * 1_048_000).encode()
        producer.publish([OutgoingMessage(topic=topics.events, key="huge", value=huge)])
        publish(producer, topics.events, [7])
        assert wait_for(lambda: handler.seen == [7], timeout=5.0)
        [record] = dead_letters(broker, topics, 1)
    finally:
        worker.stop()
        producer.close()
    assert record.key == b"huge"
    assert record.value == b""
    error = dict(record.headers)["avisa-dlq-error"].decode()
    assert error.startswith("too long to read") and "is left out" in error


def test_one_poison_in_a_large_batch_costs_a_few_flushes_not_one_per_record(broker, topic_prefix):
    topics = Topics(topic_prefix)
    ensure_topics([broker.bootstrap], topics.all(), partitions=1)
    producer = Producer([broker.bootstrap], client_id="test")
    values: list[object] = list(range(400))
    values[257] = "overflow"
    publish(producer, topics.events, values)  # there before the loop joins: one large batch
    handler = Forwarder(producer, topics.notifications)
    worker = start_loop(broker, topics, handler, producer)
    try:
        good = set(range(400)) - {257}
        assert wait_for(lambda: good <= set(handler.flushed), timeout=10.0)
        [record] = dead_letters(broker, topics, 1)
    finally:
        worker.stop()
        producer.close()
    assert json.loads(record.value) == "overflow"
    assert dict(record.headers)["avisa-dlq-offset"] == b"257"
    assert handler.flushes < 40
