"""The consumer loop: poll → handle → flush → commit, with the commit always last; then,
for a loop given a `ProgressSink`, how far each assigned partition is processed."""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata, TopicPartition

from common.failures import is_transient
from common.kafka import (
    Handler,
    InvalidMessage,
    MessageRejected,
    Producer,
    QuietSelector,
    dead_letter_message,
)

log = logging.getLogger(__name__)

Batch = dict[TopicPartition, list[ConsumerRecord]]
Segment = list[ConsumerRecord]


def _by_partition(records: Segment) -> Batch:
    """Records (in partition order) as a batch: each partition's records, in order."""
    batch: Batch = {}
    for record in records:
        batch.setdefault(TopicPartition(record.topic, record.partition), []).append(record)
    return batch


def _next_offsets(batch: Batch) -> dict[TopicPartition, OffsetAndMetadata]:
    """The offsets to commit once every record of `batch` is done."""
    return {p: OffsetAndMetadata(records[-1].offset + 1, "", -1) for p, records in batch.items()}


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """Every record accepted before `processed_until` on this partition is processed.

    It is the broker timestamp of the last record processed or, when the consumer's position
    was the log end offset (`lag` 0), the time just before the log end was read."""

    topic: str
    partition: int
    partitions: int  # the topic's partition count, as the consumer's metadata knows it
    processed_until: datetime
    lag: int


class ProgressSink(Protocol):
    """Where a `ConsumerLoop` reports its progress, after each commit and while idle."""

    def record(self, progress: Sequence[PartitionProgress]) -> None: ...


def _record_time(record: ConsumerRecord) -> datetime | None:
    stamp = record.timestamp
    if stamp is None or stamp < 0:
        return None
    return datetime.fromtimestamp(stamp / 1000, UTC)


def _batch_marks(batch: Batch) -> dict[TopicPartition, datetime]:
    """The latest broker timestamp processed per partition of `batch`. Any record after it
    in its partition was appended, so accepted, after that time."""
    marks: dict[TopicPartition, datetime] = {}
    for partition, records in batch.items():
        times = [t for t in map(_record_time, records) if t is not None]
        if times:
            marks[partition] = max(times)
    return marks


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    bootstrap_servers: Sequence[str]
    group_id: str
    topics: Sequence[str]
    deadletter_topic: str
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 1_000
    max_poll_records: int = 500
    max_poll_interval_ms: int = 300_000


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, assigned: threading.Event) -> None:
        self._assigned = assigned

    def on_partitions_revoked(self, revoked: object) -> None:
        self._assigned.clear()

    def on_partitions_assigned(self, assigned: object) -> None:
        self._assigned.set()


def describe(error: BaseException) -> str:
    """An error as a dead letter's reason: its type and message."""
    return f"{type(error).__name__}: {error}"


def _close_quietly(consumer: KafkaConsumer) -> None:
    try:
        consumer.close(autocommit=False)
    except Exception as error:
        log.debug("consumer closed with an error", extra={"error": repr(error)})


class ConsumerLoop:
    """Drives a `Handler` over a consumer group; at-least-once, commit after durable effects.

    A batch is handled, flushed and committed as one. When it fails:

    - with a transient error (`transient`, by default `common.failures.is_transient`: the
      database or broker is unavailable), nothing is committed, the consumer seeks back and the
      batch is retried after a backoff; nothing is dead-lettered;
    - with any other error, the batch is run again in halves (handle, flush, commit each),
      halving what fails down to the record that fails for good: it goes to the dead-letter
      topic with the reason and is committed past, and the others go through. A poison
      message never blocks its partition.

    `InvalidMessage` raised by `handle` is dead-lettered at once, in a batch or not.
    """

    def __init__(
        self,
        config: ConsumerConfig,
        handler: Handler,
        producer: Producer,
        *,
        transient: Callable[[BaseException], bool] = is_transient,
        progress: ProgressSink | None = None,
        progress_interval_s: float = 0.2,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._config = config
        self._progress = progress
        self._progress_interval_s = progress_interval_s
        self._clock = clock
        self._reported_at: datetime | None = None
        self._handler = handler
        self._producer = producer
        self._transient = transient
        self.assigned = threading.Event()
        self.stopped = threading.Event()
        self._stop = threading.Event()
        self._failures = 0

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once `stop()` was called."""
        return self._stop.is_set()

    def run(self) -> None:
        """Block until `stop()`; whatever the client raises, reconnect rather than die.

        A consumer thread that died would leave a process that looks healthy and consumes
        nothing, so every error here ends in a new consumer after a short wait. Nothing
        uncommitted is lost: the new member starts from the last committed offsets.
        """
        while not self._stop.is_set():
            try:
                consumer = self._connect()
            except Exception as error:
                log.warning("consumer cannot connect", extra={"error": repr(error)})
                self._stop.wait(1.0)
                continue
            try:
                self._loop(consumer)
            except Exception as error:
                self.assigned.clear()
                log.warning(
                    "consumer lost the broker; reconnecting",
                    extra={"group": self._config.group_id, "error": repr(error)},
                )
                self._stop.wait(1.0)
            finally:
                _close_quietly(consumer)
        self.stopped.set()

    def _connect(self) -> KafkaConsumer:
        c = self._config
        consumer = KafkaConsumer(
            bootstrap_servers=list(c.bootstrap_servers),
            group_id=c.group_id,
            client_id=c.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=c.session_timeout_ms,
            heartbeat_interval_ms=c.heartbeat_interval_ms,
            max_poll_records=c.max_poll_records,
            max_poll_interval_ms=c.max_poll_interval_ms,
            metrics_enabled=False,  # kafka-python's own sensors, read by nothing here
            selector=QuietSelector,
        )
        consumer.subscribe(list(c.topics), listener=_Rebalance(self.assigned))
        return consumer

    def _loop(self, consumer: KafkaConsumer) -> None:
        # With a progress sink, an idle partition's watermark must keep up with the clock (a
        # reminder waits for it), so an empty poll ends sooner.
        poll_ms = 500 if self._progress is None else int(self._progress_interval_s * 1000)
        while not self._stop.is_set():
            batch = consumer.poll(timeout_ms=poll_ms)
            if not batch:
                self._report(consumer, {}, idle=True)
                continue
            try:
                offsets = self._process(batch)
                self._handler.flush()
                consumer.commit(offsets)
                self._failures = 0
                self._report(consumer, _batch_marks(batch), idle=False)
            except Exception as error:
                if self._transient(error):
                    self._retry_later(consumer, batch, error)
                else:
                    self._isolate(consumer, batch, error)

    def _report(
        self, consumer: KafkaConsumer, marks: dict[TopicPartition, datetime], *, idle: bool
    ) -> None:
        """Tell the progress sink how far each assigned partition is processed (all of it
        committed). Progress is advisory: if it cannot be read or written, reminders wait."""
        if self._progress is None:
            return
        looked = self._clock()
        since = None if self._reported_at is None else (looked - self._reported_at)
        if idle and since is not None and since.total_seconds() < self._progress_interval_s:
            return
        try:
            assigned = list(consumer.assignment())
            if not assigned:
                return
            ends = consumer.end_offsets(assigned)
            progress = []
            for tp in assigned:
                lag = max(0, ends[tp] - consumer.position(tp))
                until = looked if lag == 0 else marks.get(tp)
                if until is None:
                    continue  # behind, and nothing processed on it now: no news
                count = len(consumer.partitions_for_topic(tp.topic) or ())
                progress.append(PartitionProgress(tp.topic, tp.partition, count, until, lag))
            self._progress.record(progress)
            self._reported_at = looked
        except Exception as error:
            log.warning(
                "consumer progress not recorded",
                extra={"group": self._config.group_id, "error": repr(error)[:300]},
            )

    def _process(self, batch: Batch) -> dict[TopicPartition, OffsetAndMetadata]:
        for records in batch.values():
            for record in records:
                self._handle(record)
        return _next_offsets(batch)

    def _handle(self, record: ConsumerRecord) -> None:
        try:
            self._handler.handle(record)
        except InvalidMessage as error:
            self._dead_letter(record, error)

    def _dead_letter(self, record: ConsumerRecord, error: Exception) -> None:
        log.warning(
            "message dead-lettered",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "error": str(error)[:300],
                "error_type": type(error).__name__,
            },
        )
        topic = self._config.deadletter_topic
        reason = str(error) if isinstance(error, InvalidMessage) else describe(error)
        try:
            self._producer.publish([dead_letter_message(record, reason, topic)])
        except MessageRejected as refused:
            # The original is too big to park as it is: park where it was and why instead,
            # rather than leave it blocking the partition.
            size = len(record.value or b"")
            reason = f"{reason[:500]} (the original value, {size} bytes, is left out: {refused})"
            self._producer.publish([dead_letter_message(record, reason, topic, value=b"")])

    def _isolate(self, consumer: KafkaConsumer, batch: Batch, error: Exception) -> None:
        """Run a batch that failed for good again in halves, and halves of the half that fails,
        down to the single record that fails: it is dead-lettered and committed past, the rest
        goes through (about 2·log2(n) flushes for one bad record in n). A transient failure
        on the way stops it: what is left is retried later from where it stopped."""
        log.warning(
            "batch failed for good; isolating the record that fails",
            extra={"group": self._config.group_id, "error": repr(error)[:300]},
        )
        self._discard()
        segments = deque([[record for records in batch.values() for record in records]])
        while segments:
            segment = segments.popleft()
            try:
                halves = self._settle(consumer, segment)
            except Exception as failure:
                if not self._transient(failure):
                    raise  # a dead letter that cannot be written: a bug, not a message
                rest = segment + [record for later in segments for record in later]
                self._retry_later(consumer, _by_partition(rest), failure)
                return
            segments.extendleft(reversed(halves))
        self._failures = 0

    def _settle(self, consumer: KafkaConsumer, segment: Segment) -> list[Segment]:
        """Handle, flush and commit `segment`; if it fails for good, its halves to try instead
        (a single record is dead-lettered and committed). Transient failures raise."""
        try:
            offsets = self._process(_by_partition(segment))
            self._handler.flush()
        except Exception as error:
            if self._transient(error):
                raise
            self._discard()
            if len(segment) > 1:
                middle = len(segment) // 2
                return [segment[:middle], segment[middle:]]
            self._dead_letter(segment[0], error)
            offsets = _next_offsets(_by_partition(segment))
        consumer.commit(offsets)
        return []

    def _discard(self) -> None:
        """Drop what the handler collected from a failed attempt (it will be collected again)."""
        discard = getattr(self._handler, "discard", None)
        if callable(discard):
            discard()

    def _retry_later(self, consumer: KafkaConsumer, batch: Batch, error: Exception) -> None:
        self._failures += 1
        delay = min(30.0, 0.2 * 2 ** min(self._failures, 8)) * (0.5 + random.random() / 2)  # noqa: S311
        log.warning(
            "batch failed; will retry",
            extra={
                "group": self._config.group_id,
                "error": repr(error)[:300],
                "retry_in_s": round(delay, 2),
            },
        )
        for partition, records in batch.items():
            consumer.seek(partition, records[0].offset)
        self._stop.wait(delay)
