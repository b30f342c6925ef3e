"""Schemathesis against the rules service's own OpenAPI, as an admin (the console's caller):
no 5xx for any generated request, and every error is problem+json.

Bounded (a few examples per operation, derandomized), on SQLite (the app and its checks are
the same on both databases; the SQL is exercised on both by the API tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from starlette.testclient import TestClient

from services.rules.config import Settings
from services.rules.main import create_app, migrate
from tests.rules.factories import ADMIN, rule_body, template_body

EXAMPLES = 12
PROBLEM_FIELDS = {"type", "title", "status", "detail"}


@pytest.fixture
def client(tmp_path) -> Iterator[TestClient]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'rules.db'}",
        env="development",
        admin_key=None,
        kafka_bootstrap="127.0.0.1:1",
        rules_consumer_enabled=False,
    )
    migrate(settings)
    with TestClient(create_app(settings)) as test_client:
        test_client.put("/v1/templates/licencia-renovacion", json=template_body(), headers=ADMIN)
        test_client.put("/v1/rules/licencia-aviso", json=rule_body(), headers=ADMIN)
        yield test_client


def send(client: TestClient, case: Any) -> Any:
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
        headers={**headers, **ADMIN},
        params=kwargs.get("params"),
        **body,
    )


def check(response: Any, label: str) -> None:
    assert response.status_code < 500, (label, response.status_code, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json", label
        assert set(response.json()) >= PROBLEM_FIELDS, (label, response.text)


def fuzz(client: TestClient, operation: Any) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def exercise(case: Any) -> None:
        check(send(client, case), operation.label)

    exercise()


def test_generated_requests_never_get_a_5xx_and_errors_are_problems(client):
    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
    operations = [result.ok() for result in schema.get_all_operations()]
    checked = []
    for operation in operations:
        if operation.path.startswith("/v1/"):
            fuzz(client, operation)
            checked.append(operation.label)
    assert "POST /v1/templates/preview" in checked and "POST /v1/rules/test" in checked
    assert len(checked) >= 23
