"""status.v1 into timelines: idempotent history, out-of-order tolerant status, per-agency views."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from common.kafka import OutgoingMessage, Producer
from schemas.events import EventRef
from schemas.notifications import Channel, Status, StatusChange, notification_id
from tests.events.conftest import ADMIN, DEMO, STRUCTURED, make_event, read_topic

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def tracked(shared_client, shared_settings):
    """An accepted event, two notifications about it, and the status.v1 stream fully consumed."""
    event = make_event()
    response = shared_client.post(
        "/v1/events", content=json.dumps(event), headers={**DEMO, "Content-Type": STRUCTURED}
    )
    assert response.status_code == 202
    ref = EventRef(source="demo", id=event["id"], type=event["type"], subject=event["subject"])
    sms = notification_id(
        rule_id="aviso", rule_version=1, source="demo", event_id=event["id"], step="now"
    )
    reminder = notification_id(
        rule_id="recordatorio", rule_version=1, source="demo", event_id=event["id"], step="-P7D"
    )

    def change(nid, status, minutes, **extra):
        return StatusChange(
            notification_id=nid,
            event=ref,
            status=status,
            at=T0 + timedelta(minutes=minutes),
            **extra,
        )

    queued = change(sms, Status.QUEUED, 0, rule="aviso", channel=Channel.SMS)
    sent = change(sms, Status.SENT, 1, rule="aviso", channel=Channel.SMS, detail="SM123")
    delivered = change(sms, Status.DELIVERED, 2, rule="aviso", channel=Channel.SMS)
    scheduled = change(
        reminder, Status.SCHEDULED, 5, rule="recordatorio", scheduled_for=T0 + timedelta(days=20)
    )
    cancelled = change(reminder, Status.CANCELLED, 9, rule="recordatorio", detail="license.renewed")
    # delivered overtakes sent; duplicates arrive as redeliveries do
    stream = [queued, delivered, sent, delivered, sent, scheduled, cancelled, scheduled]
    messages = [
        OutgoingMessage(
            topic=shared_settings.topics.status,
            key=c.notification_id,
            value=c.model_dump_json().encode(),
        )
        for c in stream
    ]
    messages.insert(
        3,
        OutgoingMessage(topic=shared_settings.topics.status, key=sms, value=b"not a status change"),
    )
    assert shared_client.app.state.status_loop.assigned.wait(20), "consumer never assigned"
    producer = Producer([shared_settings.kafka_bootstrap], client_id="test-status")
    producer.publish(messages)
    producer.close()
    wait_until_consumed(shared_settings)
    return {"event": event, "sms": sms, "reminder": reminder}


def wait_until_consumed(settings, timeout_s: float = 20.0) -> None:
    """Until the events service's group has committed up to the end of status.v1."""
    consumer = KafkaConsumer(
        bootstrap_servers=[settings.kafka_bootstrap],
        group_id=settings.group_id("events-status"),
        enable_auto_commit=False,
    )
    try:
        topic = settings.topics.status
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        end = consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while any((consumer.committed(tp) or 0) < end[tp] for tp in partitions):
            assert time.monotonic() < deadline, "status.v1 was not consumed in time"
            time.sleep(0.1)
    finally:
        consumer.close()


def test_an_event_shows_its_notifications_with_their_history(shared_client, tracked):
    response = shared_client.get(f"/v1/events/{tracked['event']['id']}", headers=DEMO)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["event"]["subject"] == tracked["event"]["subject"]
    sms, reminder = body["notifications"]
    assert (sms["id"], sms["rule"], sms["channel"]) == (tracked["sms"], "aviso", "sms")
    assert sms["status"] == "delivered"  # the late `sent` did not move it back
    assert [(h["status"], h["detail"]) for h in sms["history"]] == [
        ("queued", None),
        ("sent", "SM123"),
        ("delivered", None),
    ]
    assert reminder["id"] == tracked["reminder"]
    assert reminder["status"] == "cancelled"
    assert reminder["scheduled_for"] == "2026-12-19T10:00:00Z"
    assert [h["status"] for h in reminder["history"]] == ["scheduled", "cancelled"]


def test_the_subject_timeline_lists_notifications_oldest_first(shared_client, tracked):
    subject = tracked["event"]["subject"]
    response = shared_client.get(f"/v1/subjects/{subject}/timeline", headers=DEMO)

    assert response.status_code == 200
    timeline = response.json()
    assert timeline["subject"] == subject
    assert [n["id"] for n in timeline["notifications"]] == [tracked["sms"], tracked["reminder"]]
    assert timeline["notifications"][0]["event"] == {"source": "demo", "id": tracked["event"]["id"]}


def test_an_invalid_status_message_is_dead_lettered(shared_settings, tracked):
    parked = read_topic(shared_settings.kafka_bootstrap, shared_settings.topics.deadletter)
    assert [r.value for r in parked] == [b"not a status change"]


def test_other_agencies_see_nothing_and_admins_see_everything(shared_client, tracked):
    agency = f"other-{uuid.uuid4().hex[:6]}"
    assert (
        shared_client.post(
            "/v1/agencies", json={"id": agency, "name": "Otra"}, headers=ADMIN
        ).status_code
        == 201
    )
    key = shared_client.post(f"/v1/agencies/{agency}/keys", headers=ADMIN).json()["key"]
    other = {"Authorization": f"Bearer {key}"}
    event_id, subject = tracked["event"]["id"], tracked["event"]["subject"]

    hidden = shared_client.get(f"/v1/events/{event_id}", headers=other)
    timeline = shared_client.get(f"/v1/subjects/{subject}/timeline", headers=other)
    by_admin = shared_client.get(f"/v1/events/{event_id}", headers=ADMIN)
    with_source = shared_client.get(f"/v1/events/{event_id}?source=demo", headers=ADMIN)
    wrong_source = shared_client.get(f"/v1/events/{event_id}?source=dgt", headers=ADMIN)
    unknown = shared_client.get("/v1/events/no-such-event", headers=DEMO)

    assert hidden.status_code == 404
    assert hidden.headers["content-type"] == "application/problem+json"
    assert timeline.json()["notifications"] == []
    assert len(by_admin.json()["notifications"]) == 2
    assert with_source.status_code == 200
    assert wrong_source.status_code == 404
    assert unknown.status_code == 404
