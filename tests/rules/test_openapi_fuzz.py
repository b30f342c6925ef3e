"""Schemathesis against the rules service's own OpenAPI, as an admin (the console's caller):
no 5xx for any generated request, and every error is problem+json.

Bounded (a few examples per operation, derandomized), on SQLite (the app and its checks are
the same on both databases; the SQL is exercised on both by the API tests).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from services.rules.config import Settings
from services.rules.main import create_app, migrate
from tests.events.test_openapi_fuzz import fuzz, operations
from tests.rules.factories import ADMIN, rule_body, template_body


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


def test_generated_requests_never_get_a_5xx_and_errors_are_problems(client):
    checked = []
    for operation in operations(client):
        fuzz(client, operation, ADMIN)
        checked.append(operation.label)
    assert "POST /v1/templates/preview" in checked and "POST /v1/rules/test" in checked
    assert len(checked) >= 23
