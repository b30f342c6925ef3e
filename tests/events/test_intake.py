"""POST /v1/events against a real broker and database: 202 only once the event is on events.v1.

The tests of this module share one app per database; each uses events of its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.events.conftest import ADMIN, BATCH, DEMO, STRUCTURED, make_event, read_topic

SPEC = json.loads((Path(__file__).parents[1] / "specs" / "cloudevents.json").read_text())


@pytest.fixture
def client(shared_client):
    return shared_client


@pytest.fixture
def settings(shared_settings):
    return shared_settings


def post(client, body, *, headers=DEMO, content_type=STRUCTURED):
    return client.post(
        "/v1/events", content=json.dumps(body), headers={**headers, "Content-Type": content_type}
    )


def on_topic(settings, *ids: str) -> list[dict[str, Any]]:
    """The wire values of these event ids now on events.v1 (one per record)."""
    values = [
        json.loads(r.value) for r in read_topic(settings.kafka_bootstrap, settings.topics.events)
    ]
    return [value for value in values if value["id"] in ids]


def test_an_accepted_event_is_on_the_topic_as_a_structured_cloudevent(client, settings):
    event = make_event()
    response = post(client, event)

    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1, "duplicates": 0, "ids": [event["id"]]}
    records = read_topic(settings.kafka_bootstrap, settings.topics.events)
    [record] = [r for r in records if json.loads(r.value)["id"] == event["id"]]
    assert record.key == event["subject"].encode()
    assert ("content-type", b"application/cloudevents+json") in record.headers
    wire = json.loads(record.value)
    jsonschema.validate(wire, SPEC)
    assert wire["time"]  # defaulted to the receipt time
    assert {k: v for k, v in wire.items() if k != "time"} == event


def test_a_batch_is_accepted_whole(client, settings):
    events = [make_event() for _ in range(3)]
    response = post(client, events, content_type=BATCH)

    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 3
    assert response.json()["ids"] == [e["id"] for e in events]
    assert len(on_topic(settings, *(e["id"] for e in events))) == 3


def test_one_bad_item_rejects_the_batch_and_publishes_nothing(client, settings):
    events = [make_event() for _ in range(4)]
    events[3]["data"]["citizen"]["phone"] = "612"
    response = post(client, events, content_type=BATCH)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["path"] for e in response.json()["errors"]] == ["[3].data.citizen.phone"]
    assert on_topic(settings, *(e["id"] for e in events)) == []
    assert client.get(f"/v1/events/{events[0]['id']}", headers=DEMO).status_code == 404
    assert post(client, events[:3], content_type=BATCH).json()["accepted"] == 3


def test_invalid_fields_are_named(client, settings):
    bad_phone = make_event()
    bad_phone["data"]["citizen"]["phone"] = "612"
    no_subject = make_event()
    del no_subject["subject"]

    phone = post(client, bad_phone)
    subject = post(client, no_subject)

    assert phone.status_code == 422
    assert [e["path"] for e in phone.json()["errors"]] == ["data.citizen.phone"]
    assert "E.164" in phone.json()["errors"][0]["message"]
    assert subject.status_code == 422
    assert [e["path"] for e in subject.json()["errors"]] == ["subject"]
    assert on_topic(settings, bad_phone["id"], no_subject["id"]) == []


def test_a_resent_event_is_a_duplicate_and_published_once(client, settings):
    event = make_event()  # no `time`: the defaulted time must not change the payload hash
    first = post(client, event)
    again = post(client, event)
    changed = post(client, {**event, "type": "license.renewed"})

    assert first.json() == {"accepted": 1, "duplicates": 0, "ids": [event["id"]]}
    assert again.status_code == 202
    assert again.json() == {"accepted": 0, "duplicates": 1, "ids": [event["id"]]}
    assert changed.status_code == 409
    assert changed.headers["content-type"] == "application/problem+json"
    assert len(on_topic(settings, event["id"])) == 1


def test_repeats_inside_one_batch_count_as_duplicates(client, settings):
    event, other = make_event(), make_event()
    response = post(client, [event, other, event], content_type=BATCH)

    assert response.json()["accepted"] == 2
    assert response.json()["duplicates"] == 1
    assert len(on_topic(settings, event["id"], other["id"])) == 2


def test_keys_and_sources_are_checked(client, settings):
    events = {
        name: make_event(source=source)
        for name, source in [
            ("other", "dgt"),
            ("below", "demo/madrid"),
            ("lookalike", "demonstration"),
            ("admin", "dgt"),
        ]
    }
    assert post(client, make_event(), headers={}).status_code == 401
    assert post(client, make_event(), headers={"Authorization": "Bearer nope"}).status_code == 401
    forbidden = post(client, events["other"])
    below = post(client, events["below"])
    lookalike = post(client, events["lookalike"])
    by_admin = post(client, events["admin"], headers=ADMIN)

    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"] == "application/problem+json"
    assert below.status_code == 202
    assert lookalike.status_code == 403
    assert by_admin.status_code == 202
    published = on_topic(settings, *(e["id"] for e in events.values()))
    assert sorted(e["id"] for e in published) == sorted(
        [events["below"]["id"], events["admin"]["id"]]
    )


def test_size_media_type_and_json_errors(client, settings):
    big = make_event(padding="x" * (settings.max_body_bytes + 1))
    too_large = post(client, big)
    wrong_type = post(client, make_event(), content_type="text/plain")
    broken = client.post(
        "/v1/events", content=b'{"id": "x",', headers={**DEMO, "Content-Type": STRUCTURED}
    )
    not_array = post(client, make_event(), content_type=BATCH)

    assert too_large.status_code == 413
    assert wrong_type.status_code == 415
    assert broken.status_code == 422
    assert "line 1 column" in broken.json()["detail"]
    assert not_array.status_code == 422
    for response in (too_large, wrong_type, broken, not_array):
        assert response.headers["content-type"] == "application/problem+json"
    assert on_topic(settings, big["id"]) == []


def test_binary_mode_takes_attributes_from_headers(client, settings):
    event = make_event()
    headers = {
        **DEMO,
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": event["id"],
        "ce-source": "demo",
        "ce-type": event["type"],
        "ce-subject": event["subject"],
        "ce-time": "2026-11-29T10:00:00Z",
    }
    response = client.post("/v1/events", content=json.dumps(event["data"]), headers=headers)

    assert response.status_code == 202, response.text
    [wire] = on_topic(settings, event["id"])
    jsonschema.validate(wire, SPEC)
    assert wire["subject"] == event["subject"]
    assert wire["data"] == event["data"]
    assert wire["time"] == "2026-11-29T10:00:00Z"


def test_an_id_used_by_two_sources_needs_source_to_read(client):
    first, second = make_event(), make_event(source="demo/madrid")
    second["id"] = first["id"]
    assert post(client, first).status_code == 202
    assert post(client, second).status_code == 202

    ambiguous = client.get(f"/v1/events/{first['id']}", headers=DEMO)
    chosen = client.get(f"/v1/events/{first['id']}", params={"source": "demo/madrid"}, headers=DEMO)

    assert ambiguous.status_code == 409
    assert chosen.status_code == 200
    assert chosen.json()["event"]["source"] == "demo/madrid"
    assert chosen.json()["notifications"] == []


def test_operations_endpoints(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
    assert "avisa_events_accepted_total" in client.get("/metrics").text
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/events", "/v1/agencies", "/v1/subjects/{subject}/timeline"} <= set(paths)


def test_nul_characters_are_named_not_a_500(client, settings):
    event = make_event(subject="license/\u0000")
    event["data"]["note"] = ["ok", "bad\u0000"]
    binary_headers = {
        **DEMO,
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "nul-1",
        "ce-source": "demo",
        "ce-type": "t",
        "ce-subject": "case%00",
    }

    structured = post(client, event)
    batch = post(client, [make_event(), event], content_type=BATCH)
    binary = client.post("/v1/events", content=json.dumps(event["data"]), headers=binary_headers)
    lookup = client.get("/v1/events/ev%00x", headers=DEMO)
    timeline = client.get("/v1/subjects/a%00b/timeline", headers=DEMO)
    schema = client.put("/v1/event-types/x", json={"title": "a\u0000"}, headers=DEMO)

    assert structured.status_code == 422
    assert sorted(e["path"] for e in structured.json()["errors"]) == [
        "data.note[1]",
        "subject",
    ]
    assert [e["path"] for e in batch.json()["errors"]] == ["[1].subject", "[1].data.note[1]"]
    assert binary.status_code == 422
    assert "subject" in [e["path"] for e in binary.json()["errors"]]
    assert lookup.status_code in (404, 422) and timeline.status_code in (200, 422)
    assert schema.status_code == 422 and schema.json()["errors"][0]["path"] == "title"
    for response in (structured, batch, binary, lookup, schema):
        assert response.headers["content-type"] == "application/problem+json"
