"""The consumer loop against a real broker: commit last, dead letters, transient retries."""

import json
import threading
import time

from kafka import KafkaConsumer

from common.consumer import ConsumerConfig, ConsumerLoop
from common.kafka import InvalidMessage, OutgoingMessage, Producer, ensure_topics
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
