"""The notifications.v1 consumer: parse each request, deliver the batch concurrently, publish
its status changes (acknowledged) before the loop commits the offsets."""

from __future__ import annotations

import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, wait

from kafka.consumer.fetcher import ConsumerRecord
from pydantic import ValidationError

from common.consumer import ConsumerConfig
from common.kafka import InvalidMessage, OutgoingMessage, Producer, dead_letter_message
from schemas.notifications import Channel, NotificationRequest, Status, StatusChange
from schemas.topics import Topics
from services.notifier import repository
from services.notifier.config import Settings
from services.notifier.delivery.admission import Admitted
from services.notifier.delivery.journal import Journal
from services.notifier.delivery.publishing import publish_and_mark, status_message
from services.notifier.delivery.recording import JournalRecorder
from services.notifier.delivery.requests import Deliverer, Result

log = logging.getLogger(__name__)


Pending = tuple[ConsumerRecord, NotificationRequest]


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
    """A `common.kafka.Handler`: `handle` parses and collects, `flush` delivers the batch on a
    thread pool (one task per citizen, so one citizen's requests stay in order and the cap
    counts right), publishes every change and waits for the acks; then the loop commits.

    The batch's new requests are taken on at once (`Deliverer.take_on`) and their writes go
    through the journal, grouped with the other threads' (`JournalRecorder`); all of them are
    durable before anything is published. Requests seen before go one by one, as they may
    need reading back what an earlier try did.

    The batch is bounded by `max_poll_records` and each provider call by its timeout and the
    retry policy, so a slow provider delays a batch but never past `max_poll_interval_ms`."""

    def __init__(
        self,
        *,
        deliverer: Deliverer,
        producer: Producer,
        topics: Topics,
        sessions: repository.SessionFactory,
        journal: Journal,
        concurrency: int = 8,
    ) -> None:
        self._deliverer = deliverer
        self._producer = producer
        self._topics = topics
        self._sessions = sessions
        self._journal = journal
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="notifier-send")
        self._batch: dict[str, Pending] = {}

    def handle(self, record: ConsumerRecord) -> None:
        request = parse_request(record.value)
        self._batch.setdefault(request.id, (record, request))  # the same request twice: once

    def flush(self) -> None:
        """Deliver, publish every collected change, wait for the acks, remember they were out."""
        if not self._batch:
            return
        try:
            messages = self._deliver_all(list(self._batch.values()))
            publish_and_mark(self._producer, self._sessions, messages, self._batch)
        finally:
            self._batch.clear()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _deliver_all(self, batch: list[Pending]) -> list[OutgoingMessage]:
        admitted = self._deliverer.take_on([request for _, request in batch])
        recorder = JournalRecorder(self._journal)
        groups: dict[str, list[Pending]] = defaultdict(list)
        for item in batch:
            groups[item[1].citizen.id].append(item)
        futures = [
            self._pool.submit(self._deliver_group, group, admitted, recorder)
            for group in groups.values()
        ]
        wait(futures)  # every task ends before any error propagates: nothing runs behind a retry
        recorder.wait()
        messages: list[OutgoingMessage] = []
        for future in futures:
            messages += future.result()
        return messages

    def _deliver_group(
        self, group: list[Pending], admitted: Admitted, recorder: JournalRecorder
    ) -> list[OutgoingMessage]:
        # A citizen whose requests were all taken on now goes the batched way; the SMS cap
        # then counts what admission read plus what this task sent since.
        batched = all(request.id in admitted.taken for _, request in group)
        messages: list[OutgoingMessage] = []
        sms_sent = 0
        for record, request in group:
            result: Result
            if batched:
                taken = admitted.taken[request.id]
                result = self._deliverer.deliver_taken(taken, recorder, sms_extra=sms_sent)
                sms_sent += sum(1 for c in result.changes if _sent_sms(c))
            else:
                result = self._deliverer.process(request)
            messages += [status_message(change, self._topics) for change in result.changes]
            if result.failed is not None:
                error = DeliveryFailed(result.failed)
                messages.append(dead_letter_message(record, error, self._topics.deadletter))
        return messages


def _sent_sms(change: StatusChange) -> bool:
    return change.status is Status.SENT and change.channel is Channel.SMS
