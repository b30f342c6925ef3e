"""Schemathesis against the events service's own OpenAPI: no 5xx, every error is problem+json;
and against all three services' OpenAPI with hostile JSON put into generated bodies (nesting
past the limit, lone surrogates, numbers out of range): 422 problem+json from every operation.

Bounded (a few examples per operation, derandomized), run as an agency and as an admin.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings, strategies

from services.rules.config import Settings as RulesSettings
from services.rules.main import create_app as rules_app
from services.rules.main import migrate as rules_migrate
from tests.events.conftest import ADMIN, DEMO
from tests.notifier.test_delivery import make_settings as notifier_settings
from tests.notifier.test_delivery import running as notifier_running

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


# --- hostile JSON over every service's OpenAPI ------------------------------------------------

HOSTILE_EXAMPLES = 3
PLACEHOLDER = "__avisa_hostile__"


def hostile_value(kind: str, depth: int) -> str:
    """JSON text no service may keep: too deep, a lone surrogate, a number out of range."""
    if kind == "deep":
        return "[" * depth + "1" + "]" * depth
    if kind == "surrogate":
        return '"a\\ud800b"'
    return "-1e999" if depth % 2 else "1e999"


def with_hostile(body: Any, kind: str, depth: int) -> bytes:
    """The generated body with one hostile value in it (a field of an object, an item of an
    array, or the body itself)."""
    if isinstance(body, dict):
        field = next(iter(sorted(body)), "x")
        document: Any = {**body, field: PLACEHOLDER}
    elif isinstance(body, list):
        document = [*body, PLACEHOLDER]
    else:
        document = PLACEHOLDER
    text = json.dumps(document).replace(json.dumps(PLACEHOLDER), hostile_value(kind, depth), 1)
    return text.encode()


def json_operations(client) -> list[Any]:
    """Every operation that takes a body (documented as JSON or read raw, like webhooks)."""
    return [op for op in operations(client) if op.method.upper() in {"POST", "PUT", "PATCH"}]


def fuzz_hostile(client, operation, auth) -> None:
    @settings(
        max_examples=HOSTILE_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=operation.as_strategy(),
        kind=strategies.sampled_from(["deep", "surrogate", "overflow"]),
        depth=strategies.integers(min_value=65, max_value=400),
    )
    def exercise(case, kind, depth):
        kwargs = case.as_transport_kwargs(base_url="http://testserver")
        body = kwargs.get("json", None)
        media = case.media_type if (case.media_type or "").endswith("json") else "application/json"
        headers = {k: v for k, v in kwargs["headers"].items() if k.lower() != "authorization"}
        response = client.request(
            kwargs["method"],
            kwargs["url"].removeprefix("http://testserver"),
            headers={**headers, **auth, "Content-Type": media},
            params=kwargs.get("params"),
            content=with_hostile(body, kind, depth),
        )
        label = f"{operation.label} {kind}"
        check(response, label)
        assert response.status_code == 422, (label, response.text)

    exercise()


@pytest.fixture(scope="module")
def rules_client(module_database_url) -> Iterator[TestClient]:
    settings_ = RulesSettings(
        database_url=module_database_url,
        env="development",
        admin_key=None,
        kafka_bootstrap="127.0.0.1:1",
        rules_consumer_enabled=False,
    )
    rules_migrate(settings_)
    with TestClient(rules_app(settings_)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def notifier_client(broker, module_database_url, tmp_path_factory) -> Iterator[TestClient]:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    tmp = tmp_path_factory.mktemp("notifier")
    with notifier_running(notifier_settings(broker, prefix, module_database_url, tmp)) as client:
        yield client


def fuzz_every_json_operation(client, auth) -> list[str]:
    checked = []
    for operation in json_operations(client):
        fuzz_hostile(client, operation, auth)
        checked.append(operation.label)
    return checked


def test_hostile_json_gets_422_from_every_events_operation(client):
    assert "POST /v1/events" in fuzz_every_json_operation(client, DEMO)


def test_hostile_json_gets_422_from_every_rules_operation(rules_client):
    assert "PUT /v1/rules/{rule_id}" in fuzz_every_json_operation(rules_client, ADMIN)


def test_hostile_json_gets_422_from_every_notifier_operation(notifier_client):
    checked = fuzz_every_json_operation(notifier_client, ADMIN)
    assert "POST /v1/providers/sendgrid/events" in checked
