"""The producer's partitioner must place every key where kafka-python's default (Java's) does:
the notifier and replay tools rely on one citizen's messages sharing a partition."""

from __future__ import annotations

import random

import pytest
from kafka.partitioner.default import DefaultPartitioner
from kafka.partitioner.default import murmur2 as reference_murmur2

from common.kafka import KeyPartitioner, murmur2


class Cluster:
    """The two lookups a partitioner makes of kafka-python's cluster metadata."""

    def __init__(self, partitions: int) -> None:
        self._partitions = set(range(partitions))

    def topics(self, exclude_internal_topics: bool = True) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(self._partitions) if topic == "t" else None

    def available_partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.partitions_for_topic(topic)


def test_murmur2_matches_the_java_clients_hash() -> None:
    generator = random.Random(7)
    keys = [b"", b"a", b"ab", b"abc", b"abcd", b"ES-12345678Z", "Ñandú".encode()]
    keys += [generator.randbytes(generator.randint(0, 80)) for _ in range(2000)]
    for key in keys:
        assert murmur2(key) == reference_murmur2(key), key
    # Values from the Java client's tests (`Utils.murmur2`, a signed int there).
    java = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536}
    for key, expected in java.items():
        assert murmur2(key) == expected & 0xFFFFFFFF


def test_keyed_records_go_where_the_default_partitioner_puts_them() -> None:
    generator = random.Random(11)
    for _ in range(1000):
        cluster = Cluster(generator.randint(1, 64))
        key = f"ES-{generator.randint(0, 99_999_999):08d}Z".encode()
        ours = KeyPartitioner().partition("t", None, key, None, None, cluster)
        theirs = DefaultPartitioner().partition("t", None, key, None, None, cluster)
        assert ours == theirs


def test_keyless_records_and_unknown_topics_keep_the_default_behaviour() -> None:
    cluster = Cluster(6)
    assert KeyPartitioner().partition("t", None, None, b"v", b"v", cluster) in range(6)
    with pytest.raises(ValueError, match="other"):
        KeyPartitioner().partition("other", None, b"k", None, None, cluster)
