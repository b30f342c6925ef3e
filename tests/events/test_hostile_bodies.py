"""The intake (served before the middleware stack) refuses the same JSON as every other door."""

from __future__ import annotations

import json

import pytest

from tests.events.conftest import BATCH, DEMO, STRUCTURED, make_event


@pytest.fixture
def client(shared_client):
    return shared_client


def post(client, content: str, content_type=STRUCTURED):
    return client.post(
        "/v1/events", content=content, headers={**DEMO, "Content-Type": content_type}
    )


def with_data(raw: str) -> str:
    """An event whose `data.x` is `raw`, JSON written as is."""
    event = make_event()
    event["data"]["x"] = "__RAW__"
    return json.dumps(event).replace('"__RAW__"', raw)


def paths(response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [error["path"] for error in response.json()["errors"]]


def test_data_nested_300_deep_is_422(client):
    assert paths(post(client, with_data("[" * 300 + "1" + "]" * 300))) == [""]


def test_ten_thousand_opening_brackets_are_422_and_the_connection_serves_on(client):
    assert paths(post(client, "[" * 10_000)) == [""]
    assert post(client, json.dumps(make_event())).status_code == 202


@pytest.mark.parametrize("raw", ['"\\ud800"', '"a\\udc00b"'])
def test_a_lone_surrogate_is_422_naming_the_field(client, raw):
    assert paths(post(client, with_data(raw))) == ["data.x"]


@pytest.mark.parametrize("raw", ["1e999", "-1e999", "[1, 2e400]"])
def test_a_number_out_of_range_is_422_not_stored_as_null(client, raw):
    assert paths(post(client, with_data(raw)))[0].startswith("data.x")


def test_in_a_batch_the_item_is_named(client):
    body = "[" + with_data("1e999") + "]"
    assert paths(post(client, body, BATCH)) == ["[0].data.x"]


def test_a_surrogate_pair_is_text_and_reads_back(client):
    body = with_data('"\\ud83d\\ude00"')
    event_id = json.loads(body)["id"]

    assert post(client, body).status_code == 202
    read = client.get(f"/v1/events/{event_id}", headers=DEMO)
    assert read.status_code == 200
    assert read.json()["event"]["data"]["x"] == "\U0001f600"
