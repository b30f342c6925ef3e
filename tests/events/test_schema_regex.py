"""Agencies' schema patterns run on RE2: a catastrophic pattern is answered at once, and what
RE2 cannot compile is refused when the schema is registered."""

from __future__ import annotations

import threading
import time

import pytest

from services.events.eventtypes.registry import compile_schema, data_errors, schema_errors
from tests.events.test_eventtypes import agency_with_key, post, with_data

REDOS = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^(a+)+$"}}}


@pytest.fixture
def client(shared_client):
    return shared_client


def test_a_catastrophic_pattern_is_evaluated_in_linear_time():
    validator = compile_schema(REDOS)
    started = time.monotonic()

    errors = data_errors(validator, {"code": "a" * 100_000 + "!"}, ())

    assert [e["loc"] for e in errors] == [("data", "code")]
    assert time.monotonic() - started < 1.0  # Python's re: 17.5 s for 28 characters
    assert data_errors(validator, {"code": "aaaa"}, ()) == []


def test_pattern_properties_and_additional_properties_use_the_same_engine():
    schema = {
        "type": "object",
        "patternProperties": {"^(x+)+$": {"type": "integer"}},
        "additionalProperties": False,
    }
    validator = compile_schema(schema)

    assert data_errors(validator, {"xxx": 1}, ()) == []
    assert [e["loc"] for e in data_errors(validator, {"xxx": "1"}, ())] == [("data", "xxx")]
    [extra] = data_errors(validator, {"x" * 50_000 + "!": 1}, ())
    assert "does not match any of the regexes" in extra["msg"]


def test_a_stored_pattern_re2_cannot_compile_refuses_the_event_not_a_500():
    validator = compile_schema({"properties": {"code": {"pattern": "(a)\\1"}}})

    [error] = data_errors(validator, {"code": "aa"}, ())

    assert error["loc"] == ("data",) and "cannot be used" in error["msg"]


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        (
            {"properties": {"name": {"type": "string", "pattern": "(a)\\1"}}},
            "properties.name.pattern",
        ),
        ({"patternProperties": {"^(?=x)": {}}}, "patternProperties.^(?=x)"),
        ({"allOf": [{"pattern": "(?<!a)b"}]}, "allOf[0].pattern"),
        ({"patternProperties": {"^a": {}}, "unevaluatedProperties": False}, ""),
    ],
)
def test_what_re2_cannot_evaluate_is_refused_naming_the_path(schema, path):
    assert path in [error["path"] for error in schema_errors(schema)]


def test_the_redos_event_is_answered_at_once_and_does_not_hold_other_requests(client):
    agency, key = agency_with_key(client)
    assert (
        client.put("/v1/event-types/license.expiring", json=REDOS, headers=key).status_code == 201
    )
    other: list[float] = []

    def read_meanwhile() -> None:
        started = time.monotonic()
        assert client.get("/v1/event-types", headers=key).status_code == 200
        other.append(time.monotonic() - started)

    reader = threading.Thread(target=read_meanwhile)
    started = time.monotonic()
    reader.start()
    response = post(client, key, with_data(agency, code="a" * 28 + "!"))
    reader.join()

    assert response.status_code == 422
    assert [e["path"] for e in response.json()["errors"]] == ["data.code"]
    assert time.monotonic() - started < 2.0 and other[0] < 2.0
    assert post(client, key, with_data(agency, code="aaaa")).status_code == 202


def test_a_pattern_re2_cannot_compile_is_refused_at_the_put(client):
    _, key = agency_with_key(client)
    schema = {"properties": {"code": {"type": "string", "pattern": "(a)\\1"}}}

    response = client.put("/v1/event-types/license.expiring", json=schema, headers=key)

    assert response.status_code == 422
    assert [e["path"] for e in response.json()["errors"]] == ["properties.code.pattern"]
