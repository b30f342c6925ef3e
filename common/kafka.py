"""Kafka plumbing: an acknowledged producer, topic creation and a commit-last consumer loop."""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import struct
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.cluster import ClusterMetadata
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import (
    CorruptRecordError,
    InvalidRecordError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    TopicAlreadyExistsError,
)
from kafka.partitioner import DefaultPartitioner

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
BATCH_BYTES = 256 * 1024  # per partition: a whole scheduler round fits in few batches
# kafka-python's default, stated: a record larger than this is refused by `send` itself, and
# Kafka's brokers refuse a record batch above `message.max.bytes` (1 MiB + 12 by default).
MAX_REQUEST_BYTES = 1024 * 1024
RECORD_OVERHEAD_BYTES = 128  # a v2 record batch's header and one record's framing, rounded up


class BrokerUnavailable(Exception):
    """The broker did not acknowledge in time; nothing may be reported as accepted."""


class InvalidMessage(Exception):
    """A message that can never be processed: it goes to the dead-letter topic."""


# What the client or the broker says about one record that no retry can change.
REJECTED_RECORD = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    InvalidRecordError,
    CorruptRecordError,
)


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    topic: str
    value: bytes
    key: str | None = None
    headers: Headers = field(default_factory=list)


class MessageRejected(BrokerUnavailable):
    """Some messages of a publish can never be sent (too large, refused by the broker); the
    others were acknowledged. `rejected` pairs each refused message with the reason.

    A BrokerUnavailable for callers that know only that one (they answer 503 or retry, as
    before); `common.failures` never counts it as transient, and callers that can report or
    park the refused messages catch it first."""

    def __init__(self, rejected: list[tuple[OutgoingMessage, str]]) -> None:
        first = rejected[0][1]
        more = f" (and {len(rejected) - 1} more)" if len(rejected) > 1 else ""
        super().__init__(f"the broker refused a message: {first}{more}")
        self.rejected = rejected


def record_size(message: OutgoingMessage) -> int:
    """An upper bound of the bytes the message takes on the wire, as a record of its own."""
    key = len(message.key.encode()) if message.key is not None else 0
    headers = sum(len(name) + len(value) + 10 for name, value in message.headers)
    return len(message.value) + key + headers + RECORD_OVERHEAD_BYTES


class QuietSelector(selectors.DefaultSelector):
    """The default selector, except that `get_key` of a socket not registered raises a
    bare KeyError.

    kafka-python's network loop asks for a socket's key before every wait on it and expects
    KeyError when the socket is not registered, the usual case; the standard selector
    formats the socket's repr into that error (two system calls and a string each time:
    12.7 µs a miss against 0.8 here). Pass as `selector=`.
    """

    def __init__(self) -> None:
        super().__init__()
        self._keys: dict[int, selectors.SelectorKey] = {}

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        key = super().register(fileobj, events, data)
        self._keys[key.fd] = key
        return key

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        key = super().unregister(fileobj)
        self._keys.pop(key.fd, None)
        return key

    def modify(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        key = super().modify(fileobj, events, data)
        self._keys[key.fd] = key
        return key

    def close(self) -> None:
        self._keys.clear()
        super().close()

    def get_key(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        key = self._keys.get(fd)
        if key is not None:
            return key
        if fd < 0:  # a closed socket: only the standard lookup (by object) can find it
            return super().get_key(fileobj)
        raise KeyError(fileobj)


_M, _MASK = 0x5BD1E995, 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """The Java client's murmur2 hash (as kafka-python's), reading the key a word at a time."""
    length = len(data)
    h = 0x9747B28C ^ length
    for word in struct.unpack_from(f"<{length // 4}I", data):
        k = (word * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail, extra = length & ~3, length & 3
    if extra == 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h = ((h ^ data[tail]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


class KeyPartitioner(DefaultPartitioner):  # type: ignore[misc]
    """kafka-python's default partitioning (Java's: murmur2 of the key over the sorted
    partitions; keyless records as before), without the default's per-record set building:
    it listed every known topic and the available partitions even for a keyed record, the
    largest cost of a keyed `send`."""

    def partition(  # noqa: PLR0917 - kafka-python's Partitioner signature
        self,
        topic: str,
        key: object,
        serialized_key: bytes | None,
        value: object,
        serialized_value: bytes | None,
        cluster: ClusterMetadata,
    ) -> int:
        partitions = cluster.partitions_for_topic(topic)
        if serialized_key is None or not partitions:
            return int(
                super().partition(topic, key, serialized_key, value, serialized_value, cluster)
            )
        ordered: list[int] = sorted(partitions)
        return ordered[(murmur2(serialized_key) & 0x7FFFFFFF) % len(ordered)]


class Producer:
    """An idempotent, `acks=all` producer that connects lazily and reports failures plainly."""

    def __init__(
        self,
        bootstrap_servers: Sequence[str],
        *,
        client_id: str,
        ack_timeout_s: float = 10.0,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self._servers = list(bootstrap_servers)
        self._client_id = client_id
        self._ack_timeout_s = ack_timeout_s
        self._max_request_bytes = max_request_bytes
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def _client(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                timeout_ms = int(self._ack_timeout_s * 1000)
                request_timeout_ms = min(timeout_ms, 5000)
                delivery_timeout_ms = max(timeout_ms, request_timeout_ms + 2)
                try:
                    # publish() flushes, so nothing waits for the linger: a long one only
                    # keeps the sender asleep while a batch is appended, instead of waking it
                    # for every new record batch (the cost of kafka-python's send loop).
                    self._producer = KafkaProducer(
                        bootstrap_servers=self._servers,
                        client_id=self._client_id,
                        acks="all",
                        enable_idempotence=True,
                        linger_ms=delivery_timeout_ms - request_timeout_ms,
                        batch_size=BATCH_BYTES,
                        partitioner=KeyPartitioner(),
                        max_block_ms=timeout_ms,
                        max_request_size=self._max_request_bytes,
                        request_timeout_ms=request_timeout_ms,
                        delivery_timeout_ms=delivery_timeout_ms,
                        metrics_enabled=False,  # kafka-python's own; ours are Prometheus
                        selector=QuietSelector,
                    )
                except KafkaError as error:
                    raise BrokerUnavailable(f"cannot reach the broker: {error}") from error
            return self._producer

    def publish(self, messages: Iterable[OutgoingMessage]) -> None:
        """Send every message and return only once the broker acknowledged all of them.

        Raises BrokerUnavailable when the broker did not acknowledge (retry later), and
        MessageRejected when only messages that can never be sent failed (every other one
        was acknowledged). A message larger than a request may carry is refused here without
        being sent (kafka-python would raise in the middle of the sends).
        """
        limit = self._max_request_bytes
        rejected: list[tuple[OutgoingMessage, str]] = []
        sendable: list[OutgoingMessage] = []
        for m in messages:
            size = record_size(m)
            if size > limit:
                rejected.append((m, f"MessageSizeTooLarge: {size} bytes as sent; at most {limit}"))
            else:
                sendable.append(m)
        if not sendable:
            if rejected:
                raise MessageRejected(rejected)
            return
        client = self._client()
        try:
            futures = []
            for m in sendable:
                try:
                    future = client.send(
                        m.topic,
                        value=m.value,
                        key=m.key.encode() if m.key is not None else None,
                        headers=m.headers or None,
                    )
                except REJECTED_RECORD as error:  # refused before sending: nothing to undo
                    rejected.append((m, str(error)))
                    continue
                futures.append((m, future))
            # One flush sends every batch now (it may also carry other threads' records:
            # they are flushed by their own publish too, so waiting for them costs little).
            client.flush(timeout=self._ack_timeout_s)
            refused = self._acknowledged(futures)
        except KafkaError as error:
            # An idempotent producer does not recover once the broker forgot its producer id
            # (a restarted broker): the next publish starts a fresh client.
            self._discard(client)
            raise BrokerUnavailable(f"the broker did not acknowledge: {error}") from error
        if refused:
            self._discard(client)  # a batch the broker failed may leave the sequence broken
        if rejected or refused:
            raise MessageRejected(rejected + refused)

    def _acknowledged(
        self, futures: list[tuple[OutgoingMessage, Any]]
    ) -> list[tuple[OutgoingMessage, str]]:
        """Wait for every ack; the records the broker refused for good, with the reason."""
        refused = []
        for message, future in futures:
            try:
                future.get(timeout=self._ack_timeout_s)
            except REJECTED_RECORD as error:
                refused.append((message, str(error)))
        return refused

    def _discard(self, failed: KafkaProducer) -> None:
        with self._lock:
            if self._producer is not failed:
                return
            self._producer = None
        threading.Thread(target=_close_quietly, args=(failed, 5.0), daemon=True).start()

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            _close_quietly(producer, 5.0)


def _close_quietly(producer: KafkaProducer, timeout_s: float) -> None:
    try:
        producer.close(timeout=timeout_s)
    except KafkaError as error:
        log.warning("producer closed with unsent messages", extra={"error": str(error)})


def broker_reachable(bootstrap_servers: Sequence[str], timeout_s: float = 1.0) -> bool:
    """True when at least one bootstrap server accepts a TCP connection."""
    for server in bootstrap_servers:
        host, _, port = server.rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout_s).close()
        except OSError:
            continue
        return True
    return False


def ensure_topics(
    bootstrap_servers: Sequence[str],
    names: Iterable[str],
    *,
    partitions: int,
    replication: int = 1,
    attempts: int = 30,
    configs: Mapping[str, str] | None = None,
) -> None:
    """Create the topics that are missing (with `configs`, e.g. compaction); retried while
    the broker is still starting."""
    for attempt in range(attempts):
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=list(bootstrap_servers), client_id="avisa-admin"
            )
        except KafkaError:
            time.sleep(min(0.2 * (attempt + 1), 2.0))
            continue
        try:
            missing = set(names) - set(admin.list_topics())
            for name in sorted(missing):
                with contextlib.suppress(TopicAlreadyExistsError):
                    topic = NewTopic(name, partitions, replication, topic_configs=configs or {})
                    admin.create_topics([topic])
            return
        finally:
            admin.close()
    raise BrokerUnavailable("could not create topics: the broker is unreachable")


class Handler(Protocol):
    """What a consumer loop drives: `handle` each record, then `flush` before the commit.

    A handler may also have `discard()`: the loop calls it after a failed attempt, before
    handling the same records again, to drop what `handle` collected and `flush` did not send.
    """

    def handle(self, record: ConsumerRecord) -> None: ...

    def flush(self) -> None: ...


def dead_letter_message(
    record: ConsumerRecord, error: Exception | str, topic: str, *, value: bytes | None = None
) -> OutgoingMessage:
    """The original message (or `value` instead of it), with headers saying where it came
    from and why it was parked."""
    headers: Headers = list(record.headers or [])
    headers += [
        ("avisa-dlq-topic", record.topic.encode()),
        ("avisa-dlq-partition", str(record.partition).encode()),
        ("avisa-dlq-offset", str(record.offset).encode()),
        ("avisa-dlq-error", str(error)[:1000].encode()),
    ]
    key = record.key.decode(errors="replace") if record.key is not None else None
    original = (record.value or b"") if value is None else value
    return OutgoingMessage(topic=topic, key=key, value=original, headers=headers)
