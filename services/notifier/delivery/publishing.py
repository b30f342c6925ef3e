"""Publishing what delivery produced: status changes to status.v1, failures to deadletter.v1,
then remembering (durably) that status.v1 acknowledged them."""

from __future__ import annotations

from collections.abc import Iterable

from common.kafka import OutgoingMessage, Producer
from schemas.notifications import NotificationRequest, StatusChange
from schemas.topics import Topics
from services.notifier import repository


def status_message(change: StatusChange, topics: Topics) -> OutgoingMessage:
    """A status.v1 record, keyed by notification id."""
    return OutgoingMessage(
        topic=topics.status, key=change.notification_id, value=change.model_dump_json().encode()
    )


def dead_letter(request: NotificationRequest, reason: str, topics: Topics) -> OutgoingMessage:
    """A request that failed outside the consumer (after a deferral or a reconciliation),
    parked like the consumer's dead letters: the request, and headers saying why."""
    return OutgoingMessage(
        topic=topics.deadletter,
        key=request.citizen.id,
        value=request.model_dump_json().encode(),
        headers=[
            ("avisa-dlq-topic", topics.notifications.encode()),
            ("avisa-dlq-error", f"delivery failed: {reason}"[:1000].encode()),
        ],
    )


def publish_and_mark(
    producer: Producer,
    sessions: repository.SessionFactory,
    messages: Iterable[OutgoingMessage],
    notification_ids: Iterable[str],
) -> None:
    """Publish and wait for the acks, then record that these notifications' changes are out."""
    batch = list(messages)
    ids = list(notification_ids)
    if batch:
        producer.publish(batch)
    if ids:
        with sessions.begin() as session:
            repository.mark_published(session=session, notification_ids=ids)
