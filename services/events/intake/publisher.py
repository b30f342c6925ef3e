"""An acknowledged publisher that starts over with a fresh producer after a broker failure.

kafka-python's idempotent producer does not always recover once the broker lost its state
(seen with Tansu restarts: UnknownProducerId, then failing InitProducerId forever), so after
BrokerUnavailable the failed producer is closed in the background and the next request
connects anew.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from kafka.errors import KafkaError

from common.kafka import BrokerUnavailable, OutgoingMessage, Producer

log = logging.getLogger(__name__)


def close_quietly(producer: Producer) -> None:
    """Close a producer; a broker that is down must not turn shutdown into an error."""
    try:
        producer.close()
    except KafkaError as error:
        log.warning("producer closed with unsent messages", extra={"error": str(error)})


class Publisher:
    """`publish` waits for acks (acks=all); raises BrokerUnavailable and resets on failure."""

    def __init__(self, factory: Callable[[], Producer]) -> None:
        self._factory = factory
        self._current = factory()
        self._lock = threading.Lock()

    def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        producer = self._current
        try:
            producer.publish(messages)
        except BrokerUnavailable:
            self._replace(producer)
            raise

    def warm_up(self) -> None:
        """Connect now, so the first request does not pay for it; a broker down is not fatal."""
        try:
            self.publish([])
        except BrokerUnavailable as error:
            log.warning("broker not reachable at startup", extra={"error": str(error)})

    def _replace(self, failed: Producer) -> None:
        with self._lock:
            if self._current is not failed:
                return  # another request already replaced it
            self._current = self._factory()
        threading.Thread(
            target=close_quietly, args=(failed,), daemon=True, name="events-producer-close"
        ).start()

    def close(self) -> None:
        close_quietly(self._current)
