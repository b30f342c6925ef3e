"""The producer's reset after a broker failure, in its one home (common.kafka.Producer)."""

import pytest
from kafka.errors import KafkaTimeoutError

from common.kafka import BrokerUnavailable, OutgoingMessage, Producer, ensure_topics


def test_after_a_failed_publish_the_next_one_starts_a_fresh_client(broker, topic_prefix):
    topic = f"{topic_prefix}events.v1"
    ensure_topics([broker.bootstrap], [topic], partitions=1)
    producer = Producer([broker.bootstrap], client_id="t", ack_timeout_s=5.0)
    producer.publish([OutgoingMessage(topic=topic, value=b"0", key="k")])
    first = producer._producer
    assert first is not None

    def lost(timeout: float | None = None) -> None:
        raise KafkaTimeoutError("broker forgot us")

    first.flush = lost  # type: ignore[method-assign]
    with pytest.raises(BrokerUnavailable):
        producer.publish([OutgoingMessage(topic=topic, value=b"1", key="k")])
    assert producer._producer is None

    producer.publish([OutgoingMessage(topic=topic, value=b"2", key="k")])
    assert producer._producer is not None and producer._producer is not first
    producer.close()
