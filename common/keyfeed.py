"""Compacted record topics (keys.v1, citizens.v1): `RecordPublisher` keeps one in step with a
table; `CompactedFeed` reads one whole in every replica (no consumer group, no commits);
`KeyFeed` follows keys.v1, the agency key records, into a `common.auth.KeyRing`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from pydantic import ValidationError

from common.auth import KeyRing
from common.kafka import (
    BrokerUnavailable,
    Producer,
    QuietSelector,
    broker_reachable,
    ensure_topics,
)
from common.runtime import Loop
from schemas.keys import KeyRecord

log = logging.getLogger(__name__)

# One partition keeps every record of the (small) topic in publication order; compaction
# keeps the latest record of each key hash.
PARTITIONS = 1
CONFIGS = {"cleanup.policy": "compact"}


def ensure_compacted_topic(bootstrap_servers: Sequence[str], topic: str) -> None:
    """Create a compacted record topic if missing; both its writer and its readers call this.

    Raises `BrokerUnavailable` at once when no broker answers: the callers are loops that
    retry on their own and must stay responsive to `stop()`, not wait out the admin client's
    own retries."""
    if not broker_reachable(bootstrap_servers):
        raise BrokerUnavailable(f"cannot create {topic}: the broker is unreachable")
    ensure_topics(bootstrap_servers, [topic], partitions=PARTITIONS, configs=CONFIGS, attempts=3)


class CompactedFeed:
    """Reads a compacted topic from the beginning, passing each record's value to `apply`,
    then follows it; run in a `Worker`.

    `caught_up` is set once every record present at start was applied. Errors reconnect and
    reread from the beginning (records must be idempotent), so the loop itself never dies."""

    def __init__(
        self,
        bootstrap_servers: Sequence[str],
        topic: str,
        apply: Callable[[bytes], None],
        *,
        poll_ms: int = 200,
    ) -> None:
        self._servers = list(bootstrap_servers)
        self._topic = topic
        self._apply_value = apply
        self._poll_ms = poll_ms
        self.caught_up = threading.Event()
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Block until `stop()`."""
        while not self._stop.is_set():
            try:
                ensure_compacted_topic(self._servers, self._topic)
                consumer = KafkaConsumer(
                    bootstrap_servers=self._servers,
                    group_id=None,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    selector=QuietSelector,
                )
            except Exception as error:
                log.warning(
                    "feed cannot connect", extra={"topic": self._topic, "error": repr(error)}
                )
                self._stop.wait(1.0)
                continue
            try:
                self._follow(consumer)
            except Exception as error:
                log.warning(
                    "feed lost the broker; rereading",
                    extra={"topic": self._topic, "error": repr(error)},
                )
                self._stop.wait(1.0)
            finally:
                _close_quietly(consumer)

    def _follow(self, consumer: KafkaConsumer) -> None:
        partitions = [
            TopicPartition(self._topic, p)
            for p in sorted(consumer.partitions_for_topic(self._topic) or [])
        ]
        if not partitions:
            raise RuntimeError(f"no partitions for {self._topic} yet")
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        while not self._stop.is_set():
            for records in consumer.poll(timeout_ms=self._poll_ms).values():
                for record in records:
                    self._apply(record.value)
            if not self.caught_up.is_set() and all(
                consumer.position(p) >= ends[p] for p in partitions
            ):
                self.caught_up.set()
                log.info("feed loaded", extra={"topic": self._topic})

    def _apply(self, value: bytes | None) -> None:
        if not value:
            return  # a tombstone: nothing to learn
        try:
            self._apply_value(value)
        except ValidationError as error:
            log.warning("feed record ignored", extra={"error": str(error)[:200]})


class RecordPublisher(Loop):
    """Keeps a compacted topic in step with a table: `publish_changes` (a subclass's) runs
    every `interval_s`, or at once when woken; run in a `Worker`. A failed round (broker or
    database down) is tried again; subclasses forget nothing until the broker acknowledged it.
    """

    noun = "records"

    def __init__(
        self,
        producer: Producer,
        topic: str,
        *,
        bootstrap_servers: Sequence[str],
        interval_s: float,
    ) -> None:
        super().__init__(interval_s=interval_s)
        self._producer = producer
        self._topic = topic
        self._servers = list(bootstrap_servers)
        self._ready = False  # the topic exists

    def wake(self) -> None:
        """Something changed: publish it now rather than at the next interval (`poke()`)."""
        self.poke()

    def round(self) -> bool:
        """`publish_changes()` (creating the topic first, once), then wait `interval_s`."""
        if not self._ready:
            ensure_compacted_topic(self._servers, self._topic)
            self._ready = True
        self.publish_changes()
        return False

    def round_failed(self, error: Exception) -> None:
        log.warning(
            "records not published; will retry",
            extra={"records": self.noun, "error": repr(error)},
        )

    def publish_changes(self) -> int:
        """Publish what changed since the last acknowledged round; how many records."""
        raise NotImplementedError


class KeyFeed(CompactedFeed):
    """Reads keys.v1 into `ring` (until `caught_up` a valid agency key may still be refused)."""

    def __init__(
        self,
        bootstrap_servers: Sequence[str],
        topic: str,
        ring: KeyRing,
        *,
        poll_ms: int = 200,
    ) -> None:
        super().__init__(
            bootstrap_servers,
            topic,
            lambda value: ring.apply(KeyRecord.model_validate_json(value)),
            poll_ms=poll_ms,
        )


def _close_quietly(consumer: KafkaConsumer) -> None:
    try:
        consumer.close(autocommit=False)
    except Exception as error:
        log.debug("feed consumer closed with an error", extra={"error": repr(error)})
