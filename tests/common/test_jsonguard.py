"""JSON refused at the door of every service: too deep, lone surrogates, numbers out of range."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from common.jsonguard import RANGE_MESSAGE, SURROGATE_MESSAGE, body_problem, too_deep
from services.events.config import Settings as EventsSettings
from services.events.main import create_app as events_app
from services.notifier.config import Settings as NotifierSettings
from services.notifier.main import create_app as notifier_app
from services.rules.config import Settings as RulesSettings
from services.rules.main import create_app as rules_app


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def test_depth_is_counted_outside_strings_and_exactly():
    assert not too_deep(nested(64).encode(), 64)
    assert too_deep(nested(65).encode(), 64)
    assert not too_deep(json.dumps({"a": "[" * 1000}).encode(), 64)
    alternating = "".join("[{" if i % 2 else "{[" for i in range(40))  # 80 levels
    assert too_deep((alternating.replace("{", '{"k":') + "1" + "}]" * 40).encode(), 64)


def test_ten_thousand_opening_brackets_are_too_deep_not_a_parse_error():
    assert too_deep(b"[" * 10_000, 64)


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        (b'{"data": {"name": "\\ud800"}}', "data.name", SURROGATE_MESSAGE),
        (b'{"data": {"\\udfff": 1}}', "data.\udfff", SURROGATE_MESSAGE),
        (b'{"data": {"n": 1e999}}', "data.n", RANGE_MESSAGE),
        (b'{"data": {"n": [0, -1e999]}}', "data.n[1]", RANGE_MESSAGE),
        (b'{"data": {"n": NaN}}', "data.n", RANGE_MESSAGE),
        (b'{"data": {"n": -Infinity}}', "data.n", RANGE_MESSAGE),
    ],
)
def test_unkeepable_values_are_named(body, path, message):
    problem = body_problem(body)

    assert problem is not None and problem.status == 422
    assert problem.errors == [{"path": path, "message": message}]


@pytest.mark.parametrize(
    "body",
    [b'{"a": "\\ud83d\\ude00", "b": 1e300, "c": "NaNa", "d": [[["x"]]]}', b"{not json", b""],
)
def test_everything_else_is_left_to_the_route(body):
    assert body_problem(body) is None


def apps(tmp_path) -> dict[str, TestClient]:
    """The three services' apps, without their lifespans: the guard answers before any route."""
    common = {"env": "development", "database_url": f"sqlite:///{tmp_path / 'a.db'}"}
    return {
        "events": TestClient(events_app(EventsSettings(**common))),
        "rules": TestClient(rules_app(RulesSettings(**common))),
        "notifier": TestClient(notifier_app(NotifierSettings(**common))),
    }


ROUTES = {
    "events": ("POST", "/v1/agencies"),
    "rules": ("POST", "/v1/rules/x/test"),
    # The provider webhooks are checked for depth only (they judge each item themselves):
    # tests/notifier/test_hostile_webhooks.py covers them.
    "notifier": ("PUT", "/v1/citizens/x/preferences"),
}


@pytest.mark.parametrize("service", sorted(ROUTES))
@pytest.mark.parametrize(
    "body",
    [
        nested(300),
        "[" * 10_000,
        nested(5_000, '{"event": "processed"}'),
        '{"id": "\\ud800", "name": "x"}',
        '{"id": "x", "n": 1e999}',
    ],
)
def test_every_service_answers_422_problem_json(tmp_path, service, body):
    client = apps(tmp_path)[service]
    headers = {"Content-Type": "application/json", "Authorization": "Bearer dev-admin-key"}

    method, path = ROUTES[service]
    response = client.request(method, path, content=body, headers=headers)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"]
