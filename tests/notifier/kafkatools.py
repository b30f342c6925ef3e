"""Test-side Kafka helpers: publish with a real producer, read a topic from the beginning."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition


def publish(bootstrap: str, topic: str, *values: bytes, key: str) -> None:
    producer = KafkaProducer(bootstrap_servers=[bootstrap], acks="all")
    try:
        for value in values:
            producer.send(topic, key=key.encode(), value=value).get(timeout=10)
    finally:
        producer.close(timeout=5)


def read_until(
    bootstrap: str, topic: str, done: Callable[[list[Any]], bool], *, timeout_s: float = 20.0
) -> list[Any]:
    """Every record of `topic` from the beginning, once `done(records)` or the deadline."""
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not done(records):
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def eventually(
    check: Callable[[], Any], *, timeout_s: float = 20.0, interval_s: float = 0.05
) -> Any:
    """Poll `check` until it returns something truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(interval_s)
