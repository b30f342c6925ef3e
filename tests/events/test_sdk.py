"""The official `cloudevents` SDK as an agency's client, in all three modes, unchanged.

Both of its APIs: the long-standing `cloudevents.v1` conversion functions and the newer
`cloudevents.core` bindings. What lands on events.v1 is read back with its Kafka binding.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from cloudevents.core.bindings import http as core_http
from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as CoreEvent
from cloudevents.v1 import conversion
from cloudevents.v1.http import CloudEvent as SdkEvent

from tests.events.conftest import BATCH, DEMO, read_topic

DATA = {
    "citizen": {"id": "ES-12345678Z", "phone": "+34600111222", "locale": "es"},
    "expires_on": "2027-01-15",
}


@pytest.fixture
def client(shared_client):
    return shared_client


def attributes(**extra) -> dict:
    return {
        "id": f"sdk-{uuid.uuid4().hex[:10]}",
        "source": "demo",
        "type": "license.expiring",
        "subject": f"license/{uuid.uuid4().hex[:6]}",
        **extra,
    }


def send(client, headers, body):
    return client.post("/v1/events", content=body, headers={**DEMO, **headers})


def on_topic(settings, ids) -> dict[str, Any]:
    records = read_topic(settings.kafka_bootstrap, settings.topics.events)
    found = {}
    for record in records:
        message = KafkaMessage(
            headers=dict(record.headers),
            key=record.key,
            value=record.value,
        )
        event = from_kafka(message, JSONFormat())
        if event.get_id() in ids:
            found[event.get_id()] = event
    return found


def test_structured_and_binary_with_the_v1_api(client, shared_settings):
    structured = SdkEvent(attributes(), DATA)
    binary = SdkEvent(attributes(), DATA)

    s_headers, s_body = conversion.to_structured(structured)
    b_headers, b_body = conversion.to_binary(binary)
    answers = [send(client, s_headers, s_body), send(client, b_headers, b_body)]

    assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
    ids = {structured["id"], binary["id"]}
    events = on_topic(shared_settings, ids)
    assert set(events) == ids
    assert events[binary["id"]].get_data() == DATA
    assert events[structured["id"]].get_subject() == structured["subject"]


def test_structured_binary_and_batch_with_the_core_api(client, shared_settings):
    fmt = JSONFormat()
    one, two = CoreEvent(attributes(), DATA), CoreEvent(attributes(), DATA)
    batch = [CoreEvent(attributes(), DATA) for _ in range(3)]

    structured = core_http.to_structured(one, fmt)
    binary = core_http.to_binary(two, fmt)
    batch_body = b"[" + b",".join(fmt.write(event) for event in batch) + b"]"
    answers = [
        send(client, structured.headers, structured.body),
        send(client, binary.headers, binary.body),
        send(client, {"Content-Type": BATCH}, batch_body),
    ]

    assert [a.status_code for a in answers] == [202, 202, 202], [a.text for a in answers]
    assert answers[2].json()["accepted"] == 3
    ids = {e.get_id() for e in (one, two, *batch)}
    events = on_topic(shared_settings, ids)
    assert set(events) == ids
    assert all(e.get_data() == DATA for e in events.values())
    assert events[two.get_id()].get_time() == two.get_time()


def test_sdk_events_with_bad_data_get_the_same_clear_errors(client):
    bad = SdkEvent(attributes(), {"citizen": {"id": "c", "phone": "612"}})
    headers, body = conversion.to_binary(bad)

    response = send(client, headers, body)

    assert response.status_code == 422
    assert [e["path"] for e in response.json()["errors"]] == ["data.citizen.phone"]


def test_batch_from_v1_dicts(client):
    events = [SdkEvent(attributes(), DATA) for _ in range(2)]
    body = json.dumps([conversion.to_dict(e) for e in events])

    response = send(client, {"Content-Type": BATCH}, body)

    assert response.status_code == 202 and response.json()["accepted"] == 2
