"""Reading a topic back after a run: each record with the time it was produced (CreateTime),
to tell which stage of the pipeline the time went to."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, TopicPartition


def records(bootstrap: str, topic: str, *, timeout_s: float = 60.0) -> list[tuple[Any, float]]:
    """Every record on `topic` now: its JSON value and its timestamp in seconds."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        found: list[tuple[Any, float]] = []
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batch = consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=5000)
            if not batch:
                break
            for tp, items in batch.items():
                found += [(json.loads(r.value), r.timestamp / 1000) for r in items]
                if consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return found
    finally:
        consumer.close()


def produced_at(bootstrap: str, topic: str, key_of: Callable[[Any], str]) -> dict[str, float]:
    """Key (from each record's value) → when it was produced; the first record of a key wins."""
    found: dict[str, float] = {}
    for value, at in records(bootstrap, topic):
        found.setdefault(key_of(value), at)
    return found
