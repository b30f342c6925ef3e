"""OWASP API1 (broken object-level authorization): an agency's key against another's objects.

The table below must cover every /v1 route of the app; a new route without a row fails
`test_every_route_is_in_the_table`.
"""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi.routing import APIRoute

from tests.events.conftest import ADMIN, BATCH, STRUCTURED, make_event, wait_until
from tests.events.receiver import emit, status_changes

SECRET = "victim-secret-0123456789"


def agency_with_key(client, prefix: str) -> tuple[str, dict[str, str], str]:
    agency = f"{prefix}-{uuid.uuid4().hex[:6]}"
    assert (
        client.post("/v1/agencies", json={"id": agency, "name": prefix}, headers=ADMIN).status_code
        == 201
    )
    key = client.post(f"/v1/agencies/{agency}/keys", headers=ADMIN).json()["key"]
    return agency, {"Authorization": f"Bearer {key}"}, key[4:12]


@pytest.fixture(scope="module")
def world(shared_client, shared_settings):
    """A victim agency with an event, a notification, a callback and a type; and an attacker."""
    client = shared_client
    victim, victim_key, victim_prefix = agency_with_key(client, "victim")
    attacker, attacker_key, _ = agency_with_key(client, "attacker")
    event = make_event(source=victim)
    assert (
        client.post(
            "/v1/events",
            content=json.dumps(event),
            headers={**victim_key, "Content-Type": STRUCTURED},
        ).status_code
        == 202
    )
    [change] = status_changes(victim, 1)
    change = change.model_copy(
        update={
            "event": change.event.model_copy(
                update={"id": event["id"], "subject": event["subject"]}
            )
        }
    )
    assert client.app.state.status_loop.assigned.wait(20)
    emit(shared_settings, [change])
    wait_until(
        lambda: client.get(f"/v1/events/{event['id']}", headers=victim_key).json()["notifications"],
        message="the victim's notification",
    )
    client.put(
        f"/v1/agencies/{victim}/callback",
        json={"url": "http://127.0.0.1:9/victim", "secret": SECRET},
        headers=victim_key,
    )
    client.put("/v1/event-types/victim.type", json={"type": "object"}, headers=victim_key)
    return {
        "victim": victim,
        "attacker": attacker,
        "key": attacker_key,
        "victim_prefix": victim_prefix,
        "event": event,
    }


def attempts(w) -> list[tuple[str, str, str, dict, set[int]]]:
    """(method, route, concrete path, request kwargs, acceptable statuses) for the attacker."""
    victim, event = w["victim"], w["event"]
    foreign = make_event(source=victim)
    binary_headers = {
        "ce-specversion": "1.0",
        "ce-id": "b-1",
        "ce-source": victim,
        "ce-type": "t",
        "ce-subject": "s",
        "Content-Type": "application/json",
    }
    return [
        ("POST", "/v1/agencies", "/v1/agencies", {"json": {"id": "x", "name": "x"}}, {403}),
        ("GET", "/v1/agencies", "/v1/agencies", {}, {403}),
        ("POST", "/v1/agencies/{agency_id}/keys", f"/v1/agencies/{victim}/keys", {}, {403}),
        ("GET", "/v1/agencies/{agency_id}/keys", f"/v1/agencies/{victim}/keys", {}, {403}),
        (
            "DELETE",
            "/v1/agencies/{agency_id}/keys/{prefix}",
            f"/v1/agencies/{victim}/keys/{w['victim_prefix']}",
            {},
            {403},
        ),
        (
            "PUT",
            "/v1/agencies/{agency_id}/callback",
            f"/v1/agencies/{victim}/callback",
            {"json": {"url": "http://evil.example/x", "secret": "s" * 20}},
            {403},
        ),
        ("GET", "/v1/agencies/{agency_id}/callback", f"/v1/agencies/{victim}/callback", {}, {403}),
        (
            "DELETE",
            "/v1/agencies/{agency_id}/callback",
            f"/v1/agencies/{victim}/callback",
            {},
            {403},
        ),
        (
            "PUT",
            "/v1/agencies/{agency_id}/limits",
            f"/v1/agencies/{victim}/limits",
            {"json": {"requests_per_minute": 1}},
            {403},
        ),
        ("GET", "/v1/agencies/{agency_id}/limits", f"/v1/agencies/{victim}/limits", {}, {403}),
        (
            "POST",
            "/v1/events",
            "/v1/events",
            {"content": json.dumps(foreign), "headers": {"Content-Type": STRUCTURED}},
            {403},
        ),
        (
            "POST",
            "/v1/events",
            "/v1/events",
            {
                "content": json.dumps([make_event(source=w["attacker"]), foreign]),
                "headers": {"Content-Type": BATCH},
            },
            {403},
        ),
        (
            "POST",
            "/v1/events",
            "/v1/events",
            {"content": json.dumps(foreign["data"]), "headers": binary_headers},
            {403},
        ),
        ("GET", "/v1/events/{event_id:path}", f"/v1/events/{event['id']}", {}, {404}),
        (
            "GET",
            "/v1/events/{event_id:path}",
            f"/v1/events/{event['id']}?source={victim}",
            {},
            {404},
        ),
        (
            "PUT",
            "/v1/event-types/{event_type}",
            f"/v1/event-types/victim.type?agency={victim}",
            {"json": {"type": "object"}},
            {403},
        ),
        (
            "GET",
            "/v1/event-types/{event_type}",
            f"/v1/event-types/victim.type?agency={victim}",
            {},
            {403},
        ),
        ("GET", "/v1/event-types/{event_type}", "/v1/event-types/victim.type", {}, {404}),
        ("GET", "/v1/event-types", f"/v1/event-types?agency={victim}", {}, {403}),
        (
            "DELETE",
            "/v1/event-types/{event_type}",
            f"/v1/event-types/victim.type?agency={victim}",
            {},
            {403},
        ),
    ]


def test_every_attempt_is_refused_with_a_problem(shared_client, world):
    for method, _route, path, kwargs, expected in attempts(world):
        headers = {**world["key"], **kwargs.pop("headers", {})}
        response = shared_client.request(method, path, headers=headers, **kwargs)
        assert response.status_code in expected, (method, path, response.status_code, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert SECRET not in response.text and world["event"]["subject"] not in response.text


def test_nothing_of_the_victims_changed_or_leaked(shared_client, world):
    victim, event = world["victim"], world["event"]

    timeline = shared_client.get(f"/v1/subjects/{event['subject']}/timeline", headers=world["key"])
    listing = shared_client.get("/v1/event-types", headers=world["key"])
    own = shared_client.get(f"/v1/events/{event['id']}", headers=ADMIN).json()
    callback = shared_client.get(f"/v1/agencies/{victim}/callback", headers=ADMIN).json()
    keys = shared_client.get(f"/v1/agencies/{victim}/keys", headers=ADMIN).json()["keys"]
    types = shared_client.get(f"/v1/event-types?agency={victim}", headers=ADMIN).json()

    assert timeline.status_code == 200 and timeline.json()["notifications"] == []
    assert listing.json()["event_types"] == []
    assert len(own["notifications"]) == 1 and own["trace"]
    assert callback["url"] == "http://127.0.0.1:9/victim"
    assert [k["revoked_at"] for k in keys] == [None]
    assert [t["type"] for t in types["event_types"]] == ["victim.type"]
    limits = shared_client.get(f"/v1/agencies/{victim}/limits", headers=ADMIN).json()
    assert limits["custom"] is False


def test_every_route_is_in_the_table(shared_client, world):
    covered = {(method, route) for method, route, *_ in attempts(world)}
    covered.add(("GET", "/v1/subjects/{subject:path}/timeline"))  # empty for others, above
    routes = {
        (method, route.path)
        for route in api_routes(shared_client.app.routes)
        if route.path.startswith("/v1/")
        for method in route.methods
    }
    assert routes, "no routes found: the walk below missed how FastAPI keeps them"
    assert routes - covered == set()


def api_routes(routes) -> list[APIRoute]:
    """Every APIRoute, also inside included routers (FastAPI keeps those wrapped)."""
    found, pending = [], list(routes)
    while pending:
        route = pending.pop()
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            pending += route.original_router.routes
    return found
