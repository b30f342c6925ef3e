"""Schemathesis against the events service's own OpenAPI: no 5xx, every error is problem+json.

Bounded (a few examples per operation, derandomized), run as an agency and as an admin.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.events.conftest import ADMIN, DEMO

EXAMPLES = 12
PROBLEM_FIELDS = {"type", "title", "status", "detail"}


@pytest.fixture
def client(shared_client):
    return shared_client


def operations(client):
    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
    found = [result.ok() for result in schema.get_all_operations()]
    return [op for op in found if op.path.startswith("/v1/")]


def send(client, case, auth):
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    body = {}
    if "json" in kwargs:
        body["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        body["content"] = kwargs["data"]
    headers = {k: v for k, v in kwargs["headers"].items() if k.lower() != "authorization"}
    return client.request(
        kwargs["method"],
        kwargs["url"].removeprefix("http://testserver"),
        headers={**headers, **auth},
        params=kwargs.get("params"),
        **body,
    )


def check(response, label):
    assert response.status_code < 500, (label, response.status_code, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json", label
        assert set(response.json()) >= PROBLEM_FIELDS, (label, response.text)


def fuzz(client, operation, auth) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def exercise(case):
        check(send(client, case, auth), operation.label)

    exercise()


@pytest.mark.parametrize("auth", [DEMO, ADMIN], ids=["agency", "admin"])
def test_generated_requests_never_get_a_5xx_and_errors_are_problems(client, auth):
    checked = []
    for operation in operations(client):
        fuzz(client, operation, auth)
        checked.append(operation.label)

    assert "POST /v1/events" in checked and len(checked) >= 16


def test_the_openapi_document_describes_the_event_body(client):
    document = client.get("/openapi.json").json()
    body = document["paths"]["/v1/events"]["post"]["requestBody"]["content"]

    assert set(body) == {
        "application/cloudevents+json",
        "application/json",
        "application/cloudevents-batch+json",
    }
    event = body["application/cloudevents+json"]["schema"]
    assert set(event["required"]) >= {"specversion", "id", "source", "type", "subject", "data"}
    assert "$ref" not in str(event)
    assert body["application/cloudevents-batch+json"]["schema"]["maxItems"] == 1000
