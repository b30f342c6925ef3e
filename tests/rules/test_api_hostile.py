"""The rules admin API against hostile input: out-of-range dates, runaway templates, keys."""

from datetime import UTC, datetime

import pytest

from common.auth import hash_key, new_key
from schemas.keys import KeyRecord
from tests.rules.factories import ADMIN, event_body, rule_body, template_body


def put(client, kind, body, object_id=None):
    object_id = object_id or body["id"]
    return client.put(f"/v1/{kind}/{object_id}", json=body, headers=ADMIN)


@pytest.mark.parametrize("expires_on", ["0001-01-01", "9999-12-31"])
def test_a_dry_run_with_a_deadline_at_the_calendars_edge_shows_the_failure(client, expires_on):
    assert put(client, "templates", template_body()).status_code == 200
    schedule = {"relative_to": "data.expires_on", "offsets": ["-P30D", "-P1D"], "at": "09:00"}
    rule = rule_body(id="licencia-renovacion", schedule=schedule, cancel_on=["license.renewed"])
    assert put(client, "rules", rule).status_code == 200
    response = client.post(
        "/v1/rules/licencia-renovacion/test",
        json=event_body(expires_on=expires_on),
        headers=ADMIN,
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["notifications"] == []
    [failure] = result["failures"]
    assert "data.expires_on" in failure and "outside the calendar" in failure


def test_a_dry_run_with_a_far_future_time_shows_the_failure(client):
    assert put(client, "templates", template_body()).status_code == 200
    assert put(client, "rules", rule_body()).status_code == 200
    response = client.post(
        "/v1/rules/licencia-aviso/test",
        json=event_body(time="9999-12-31T23:59:59Z"),
        headers=ADMIN,
    )
    assert response.status_code == 200, response.text
    [failure] = response.json()["failures"]
    assert "expires_after P2D" in failure and "outside the calendar" in failure


def errors_of(response):
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return {e["path"]: e["message"] for e in response.json()["errors"]}


RECURSING = "{% macro a() %}{{ a() }}{% endmacro %}{{ a() }}"
LOOPING = "{% for i in range(3000) %}{% for j in range(1000) %}x{% endfor %}{% endfor %}"


@pytest.mark.parametrize(("source", "says"), [(RECURSING, "recurses"), (LOOPING, "steps")])
def test_a_runaway_template_is_refused_at_save_naming_the_text(client, source, says):
    response = put(client, "templates", template_body(es={"sms": source}))
    assert says in errors_of(response)["locales.es.sms"]


def test_a_template_text_over_the_size_limit_is_refused(client):
    huge = "Hola {{ citizen.name }}. " + "x" * 70_000
    response = put(
        client,
        "templates",
        template_body(es={"sms": "hola", "email_text": huge, "email_subject": "Aviso"}),
    )
    message = errors_of(response)["locales.es.email_text"]
    assert "65536" in message and "AVISA_RULES_TEMPLATE_MAX_BYTES" in message


def test_a_preview_that_recurses_is_a_422_naming_the_text(client):
    assert put(client, "templates", template_body(es={"sms": "{{ data.x }}"})).status_code == 200
    # A template saved before the budget existed, or one whose recursion depends on the event.
    source = "{% macro a(n) %}{{ a(n) if n else '' }}{% endmacro %}{{ a(data.x) }}"
    assert put(client, "templates", template_body(es={"sms": source})).status_code == 200
    response = client.post(
        "/v1/templates/licencia-renovacion/preview", json=event_body(x=1), headers=ADMIN
    )
    assert "recurses" in errors_of(response)["locales.es.sms"]


def test_an_agency_key_on_a_rules_route_is_forbidden_and_an_unknown_key_unauthorized(client):
    key = new_key()
    record = KeyRecord(
        agency_id="dgt", prefix=key[:8], key_hash=hash_key(key), at=datetime.now(UTC)
    )
    client.app.state.agency_keys.apply(record)
    agency = client.get("/v1/rules", headers={"Authorization": f"Bearer {key}"})
    assert agency.status_code == 403, agency.text
    assert agency.headers["content-type"] == "application/problem+json"
    assert "admin" in agency.json()["detail"]
    unknown = client.get("/v1/rules", headers={"Authorization": f"Bearer {new_key()}"})
    assert unknown.status_code == 401
