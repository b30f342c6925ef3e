"""keys.v1: the compacted topic of agency key records, and the loop that follows it into a
`common.auth.KeyRing` (every replica reads all of it: no consumer group, no commits)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from pydantic import ValidationError

from common.auth import KeyRing
from common.kafka import ensure_topics
from schemas.keys import KeyRecord

log = logging.getLogger(__name__)

# One partition keeps every record of the (small) topic in publication order; compaction
# keeps the latest record of each key hash.
PARTITIONS = 1
CONFIGS = {"cleanup.policy": "compact"}


def ensure_keys_topic(bootstrap_servers: Sequence[str], topic: str) -> None:
    """Create keys.v1 (compacted) if missing; both its writer and its readers call this."""
    ensure_topics(bootstrap_servers, [topic], partitions=PARTITIONS, configs=CONFIGS)


class KeyFeed:
    """Reads keys.v1 from the beginning into `ring`, then follows it; run in a `Worker`.

    `caught_up` is set once every record present at start was applied (until then a valid
    agency key may still be refused). Errors reconnect and reread from the beginning
    (records are idempotent), so the loop itself never dies."""

    def __init__(
        self,
        bootstrap_servers: Sequence[str],
        topic: str,
        ring: KeyRing,
        *,
        poll_ms: int = 200,
    ) -> None:
        self._servers = list(bootstrap_servers)
        self._topic = topic
        self._ring = ring
        self._poll_ms = poll_ms
        self.caught_up = threading.Event()
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Block until `stop()`."""
        while not self._stop.is_set():
            try:
                ensure_keys_topic(self._servers, self._topic)
                consumer = KafkaConsumer(
                    bootstrap_servers=self._servers,
                    group_id=None,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                )
            except Exception as error:
                log.warning("key feed cannot connect", extra={"error": repr(error)})
                self._stop.wait(1.0)
                continue
            try:
                self._follow(consumer)
            except Exception as error:
                log.warning("key feed lost the broker; rereading", extra={"error": repr(error)})
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
                log.info("agency keys loaded", extra={"keys": len(self._ring)})

    def _apply(self, value: bytes | None) -> None:
        if not value:
            return  # a tombstone: nothing to learn
        try:
            self._ring.apply(KeyRecord.model_validate_json(value))
        except ValidationError as error:
            log.warning("key record ignored", extra={"error": str(error)[:200]})


def _close_quietly(consumer: KafkaConsumer) -> None:
    try:
        consumer.close(autocommit=False)
    except Exception as error:
        log.debug("key feed consumer closed with an error", extra={"error": repr(error)})
