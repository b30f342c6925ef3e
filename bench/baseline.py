"""The raw kafka-python baseline: produce → consume → produce → consume, no processing."""

from __future__ import annotations

import time
import uuid

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic


def _consume(
    bootstrap: str, topic: str, count: int, forward: KafkaProducer | None, to_topic: str | None
) -> None:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        max_poll_records=2000,
    )
    seen = 0
    while seen < count:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                if forward is not None and to_topic is not None:
                    forward.send(to_topic, key=record.key, value=record.value)
            seen += len(records)
        consumer.commit()
    if forward is not None:
        forward.flush()
    consumer.close()


def two_hop_baseline(bootstrap: str, count: int, size: int = 1024) -> dict[str, float]:
    """Messages/s of a two-hop pipeline with the same producer settings as the services."""
    first, second = f"bench-a-{uuid.uuid4().hex[:6]}", f"bench-b-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(first, 6, 1), NewTopic(second, 6, 1)])
    admin.close()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=2
    )
    payload = b"x" * size
    start = time.perf_counter()
    for i in range(count):
        producer.send(first, key=str(i).encode(), value=payload)
    producer.flush()
    produced = time.perf_counter()
    _consume(bootstrap, first, count, producer, second)
    _consume(bootstrap, second, count, None, None)
    done = time.perf_counter()
    producer.close()
    return {"produce_per_s": count / (produced - start), "two_hop_per_s": count / (done - start)}
