"""The notifications.v1 consumer: parse each request, deliver it, publish its status changes
(acknowledged) before the loop commits the offsets."""

from __future__ import annotations

import logging

from kafka.consumer.fetcher import ConsumerRecord
from pydantic import ValidationError

from common.consumer import ConsumerConfig
from common.kafka import InvalidMessage, OutgoingMessage, Producer, dead_letter_message
from schemas.notifications import NotificationRequest, StatusChange
from schemas.topics import Topics
from services.notifier import repository
from services.notifier.config import Settings
from services.notifier.delivery import Deliverer

log = logging.getLogger(__name__)

class DeliveryFailed(Exception):
    """Every channel failed: the request is parked on the dead-letter topic for an operator."""


def consumer_config(settings: Settings) -> ConsumerConfig:
    topics = settings.topics
    return ConsumerConfig(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.group_id("notifier"),
        topics=[topics.notifications],
        deadletter_topic=topics.deadletter,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        max_poll_records=settings.consumer_max_poll_records,
    )


def parse_request(value: bytes | None) -> NotificationRequest:
    """The request in a record's value, or InvalidMessage (it will never become valid)."""
    if not value:
        raise InvalidMessage("empty notification request")
    try:
        return NotificationRequest.model_validate_json(value)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(value)'}: {e['msg']}"
            for e in error.errors(include_input=False)[:10]
        )
        raise InvalidMessage(f"invalid notification request: {problems}") from error


class NotificationHandler:
    """A `common.kafka.Handler`: deliver in `handle`, publish in `flush`, then the loop commits."""

    def __init__(
        self,
        *,
        deliverer: Deliverer,
        producer: Producer,
        topics: Topics,
        sessions: repository.SessionFactory,
    ) -> None:
        self._deliverer = deliverer
        self._producer = producer
        self._topics = topics
        self._sessions = sessions
        self._pending: dict[str, list[OutgoingMessage]] = {}

    def handle(self, record: ConsumerRecord) -> None:
        request = parse_request(record.value)
        if request.id in self._pending:  # the same request twice in one batch
            return
        result = self._deliverer.process(request)
        messages = [self._status_message(change) for change in result.changes]
        if result.failed is not None:
            messages.append(
                dead_letter_message(record, DeliveryFailed(result.failed), self._topics.deadletter)
            )
        self._pending[request.id] = messages

    def flush(self) -> None:
        """Publish every collected change, wait for the acks, then remember they were published."""
        if not self._pending:
            return
        self._producer.publish(m for messages in self._pending.values() for m in messages)
        with self._sessions.begin() as session:
            repository.mark_published(session=session, notification_ids=self._pending)
        self._pending.clear()

    def _status_message(self, change: StatusChange) -> OutgoingMessage:
        return OutgoingMessage(
            topic=self._topics.status,
            key=change.notification_id,
            value=change.model_dump_json().encode(),
        )
