"""An in-memory bus with Kafka's semantics where the services rely on them: records keyed to a
partition by murmur2 (as `KeyPartitioner`), kept in order per partition, read from a position,
committed separately (a crash re-reads from the committed offset: at-least-once)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from common.kafka import OutgoingMessage
from services.rules.watermarks import partition_of


@dataclass(frozen=True, slots=True)
class Record:
    """What the handlers read of a `ConsumerRecord`."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: int  # broker time, ms
    headers: tuple[tuple[str, bytes], ...] = ()


class Crash(Exception):
    """A simulated process crash: whatever the process held in memory is gone."""


class Bus:
    """Topics of `partitions` partitions each, created on first use."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._logs: dict[str, list[list[Record]]] = {}

    def log(self, topic: str, partition: int) -> list[Record]:
        logs = self._logs.setdefault(topic, [[] for _ in range(self.partitions)])
        return logs[partition]

    def append(self, topic: str, key: str | None, value: bytes, at: datetime) -> Record:
        partition = partition_of(key, self.partitions) if key is not None else 0
        log = self.log(topic, partition)
        stamp = int(at.timestamp() * 1000)
        record = Record(topic, partition, len(log), key.encode() if key else None, value, stamp)
        log.append(record)
        return record


class SimProducer:
    """A `Producer` over the bus: every message is acknowledged when appended. With
    `crash_next` set, the next publish of a notification request appends (the broker has it)
    and then crashes the caller before it hears the acknowledgement."""

    def __init__(self, bus: Bus, clock: Callable[[], datetime], *, crash_topic: str) -> None:
        self._bus = bus
        self._clock = clock
        self._crash_topic = crash_topic
        self.crash_next = False

    def publish(self, messages: Iterable[OutgoingMessage]) -> None:
        batch = list(messages)
        for message in batch:
            self._bus.append(message.topic, message.key, message.value, self._clock())
        if self.crash_next and any(m.topic == self._crash_topic for m in batch):
            self.crash_next = False
            raise Crash("crashed after the broker acknowledged, before the commit")

    def close(self) -> None:
        return None


class Reader:
    """A consumer's position and committed offsets on one topic (all partitions)."""

    def __init__(self, bus: Bus, topic: str) -> None:
        self._bus = bus
        self.topic = topic
        self.position = [0] * bus.partitions
        self.committed = [0] * bus.partitions

    def pending(self, until_ms: int | None = None) -> list[Record]:
        """The records after the position (appended by `until_ms`, when given), by partition."""
        found = []
        for p in range(self._bus.partitions):
            log = self._bus.log(self.topic, p)
            for record in log[self.position[p] :]:
                if until_ms is not None and record.timestamp > until_ms:
                    break
                found.append(record)
        return found

    def advance(self, records: Iterable[Record]) -> None:
        for record in records:
            self.position[record.partition] = record.offset + 1

    def commit(self) -> None:
        self.committed = list(self.position)

    def rewind(self) -> None:
        """After a crash: back to the committed offsets."""
        self.position = list(self.committed)

    def lag(self, partition: int) -> int:
        return len(self._bus.log(self.topic, partition)) - self.position[partition]
