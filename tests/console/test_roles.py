"""Who may do what: every route has a row in the role table, and the rows hold.

`test_every_route_has_a_row_in_the_role_table` fails when a page is added without saying who
may use it (as tests/events/test_tenancy.py does for the events API).
"""

from __future__ import annotations

import uuid
from typing import cast

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from services.console.main import create_app
from services.console.web import GUARDS
from tests.console.conftest import console_settings, post_form, sign_in
from tests.events.conftest import ADMIN
from tests.rules.factories import rule_body, template_body

OPERATIONS = {("GET", "/healthz"), ("GET", "/readyz")}
"""Probes for the orchestrator, outside the console's pages (no cookies, no HTML)."""


def routes_of(app) -> set[tuple[str, str]]:
    """Every (method, path) the app serves, inside included routers too (the console's
    routers have no prefix)."""
    found = set()
    pending = list(app.routes)
    while pending:
        route = pending.pop()
        if isinstance(route, APIRoute):
            found |= {(method, route.path) for method in route.methods if method != "HEAD"}
        elif hasattr(route, "original_router"):
            pending += route.original_router.routes
    assert found, "no routes found: has FastAPI changed how it keeps included routers?"
    return found


def test_every_route_has_a_row_in_the_role_table(tmp_path):
    app = create_app(console_settings(f"sqlite:///{tmp_path / 'c.db'}"))
    table = app.state.console.access
    missing = routes_of(app) - OPERATIONS - set(table)
    assert missing == set(), f"routes without a row in a page module's ACCESS: {missing}"
    assert set(table) <= routes_of(app), "rows for routes that do not exist"


def test_a_route_without_a_row_is_refused_even_to_an_admin(settings, backends, account):
    from tests.console.conftest import console_app

    with console_app(settings, backends) as client:
        extra = APIRouter(dependencies=GUARDS)
        extra.add_api_route("/unlisted", lambda: {"leak": True}, methods=["GET"])
        app = cast(FastAPI, client.app)
        app.include_router(extra)
        sign_in(client, account(role="admin"))
        answer = client.get("/unlisted")
        assert answer.status_code == 403 and "leak" not in answer.text


@pytest.fixture(scope="module")
def agencies(backends):
    """Agency A (the editor's) and agency B, each with a key, a template and a rule."""
    names = {}
    for letter in "ab":
        agency = f"{letter}-{uuid.uuid4().hex[:6]}"
        backends.events.post("/v1/agencies", json={"id": agency, "name": letter}, headers=ADMIN)
        prefix = backends.events.post(f"/v1/agencies/{agency}/keys", headers=ADMIN).json()["prefix"]
        template = template_body(id=f"t-{agency}")
        backends.rules.put(f"/v1/templates/{template['id']}", json=template, headers=ADMIN)
        rule = rule_body(id=f"r-{agency}", template=template["id"], source=agency)
        backends.rules.put(f"/v1/rules/{rule['id']}", json=rule, headers=ADMIN)
        names[letter] = {"id": agency, "prefix": prefix, "rule": rule["id"]}
    return names


def expectations(a, b) -> list[tuple[str, str, dict[str, int]]]:
    """(method, path, {role: status}) for a viewer, an editor of A and an admin."""
    a_id, b_id = a["id"], b["id"]
    return [
        ("GET", "/", {"viewer": 200, "editor": 200, "admin": 200}),
        ("GET", "/rules", {"viewer": 200, "editor": 200, "admin": 200}),
        ("GET", "/templates", {"viewer": 200, "editor": 200, "admin": 200}),
        ("GET", "/agencies", {"viewer": 200, "editor": 200, "admin": 200}),
        ("GET", f"/agencies/{a_id}", {"viewer": 200, "editor": 200, "admin": 200}),
        ("GET", f"/agencies/{b_id}", {"viewer": 200, "editor": 404, "admin": 200}),
        (
            "GET",
            f"/agencies/{a_id}/keys/{a['prefix']}/revoke",
            {"viewer": 403, "editor": 200, "admin": 200},
        ),
        (
            "GET",
            f"/agencies/{b_id}/keys/{b['prefix']}/revoke",
            {"viewer": 403, "editor": 404, "admin": 200},
        ),
        ("POST", f"/agencies/{b_id}/keys", {"viewer": 403, "editor": 404}),
        ("POST", f"/agencies/{b_id}/callback", {"viewer": 403, "editor": 404}),
        ("POST", f"/agencies/{b_id}/keys/{b['prefix']}/revoke", {"viewer": 403, "editor": 404}),
        ("POST", "/agencies", {"viewer": 403, "editor": 403}),
        ("GET", "/audit", {"viewer": 200, "editor": 403, "admin": 200}),
        ("GET", f"/rules/{a['rule']}", {"viewer": 200, "editor": 200, "admin": 200}),
        ("GET", f"/rules/{b['rule']}", {"viewer": 200, "editor": 404, "admin": 200}),
        ("GET", f"/rules/{a['rule']}/edit", {"viewer": 403, "editor": 200, "admin": 200}),
        ("GET", f"/rules/{b['rule']}/edit", {"viewer": 403, "editor": 404, "admin": 200}),
        ("GET", f"/rules/{b['rule']}/versions", {"viewer": 200, "editor": 404, "admin": 200}),
        ("GET", "/rules/new", {"viewer": 403, "editor": 200, "admin": 200}),
        ("POST", f"/rules/{b['rule']}/enabled", {"viewer": 403, "editor": 404}),
        ("POST", f"/rules/{b['rule']}/edit", {"viewer": 403, "editor": 404}),
        ("POST", f"/rules/{b['rule']}/try", {"editor": 404}),
        ("POST", f"/rules/{b['rule']}/versions/1/restore", {"viewer": 403, "editor": 404}),
        ("GET", f"/templates/t-{b_id}", {"viewer": 200, "editor": 200, "admin": 200}),
        ("GET", "/templates/new", {"viewer": 403, "editor": 200, "admin": 200}),
        ("POST", f"/templates/t-{b_id}", {"viewer": 403}),
        ("POST", f"/templates/t-{b_id}/versions/1/restore", {"viewer": 403}),
    ]


@pytest.mark.parametrize("role", ["viewer", "editor", "admin"])
def test_each_role_gets_what_the_table_says(client, account, agencies, backends, role):
    person = account(role=role, agency_id=agencies["a"]["id"] if role == "editor" else None)
    sign_in(client, person)
    for method, path, statuses in expectations(agencies["a"], agencies["b"]):
        if role not in statuses:
            continue
        if method == "GET":
            answer = client.get(path, follow_redirects=False)
        else:
            data = {"id": "x", "name": "x", "url": "https://x.example/", "secret": "s" * 20}
            answer = post_form(client, "/", path, data, follow_redirects=False)
        assert answer.status_code == statuses[role], (role, method, path, answer.status_code)
    rule_b = backends.rules.get(f"/v1/rules/{agencies['b']['rule']}", headers=ADMIN).json()
    assert rule_b["version"] == 1, "B's rule was changed"
    keys = backends.events.get(f"/v1/agencies/{agencies['b']['id']}/keys", headers=ADMIN).json()
    assert all(k["revoked_at"] is None for k in keys["keys"]), "B's key was revoked"


def test_an_editor_sees_only_the_rules_and_agencies_of_their_agency(client, account, agencies):
    a, b = agencies["a"], agencies["b"]
    sign_in(client, account(role="editor", agency_id=a["id"]))
    rules = client.get("/rules").text
    assert a["rule"] in rules and b["rule"] not in rules
    listing = client.get("/agencies").text
    assert f"/agencies/{a['id']}" in listing and f"/agencies/{b['id']}" not in listing


def test_a_viewer_sees_staff_emails_masked(client, account, backends, app_client):
    changer = f"lucia-{uuid.uuid4().hex[:6]}@example.es"
    template = template_body(id=f"t-{uuid.uuid4().hex[:6]}")
    backends.rules.put(
        f"/v1/templates/{template['id']}",
        json=template,
        headers={**ADMIN, "Avisa-Actor": changer},
    )
    viewer = account(role="viewer")
    sign_in(client, viewer)
    page = client.get(f"/audit?object={template['id']}").text
    assert changer not in page and "l***@example.es" in page
    assert viewer.email not in page  # their own address, in the account bar, masked too
    client.cookies.clear()
    sign_in(client, account(role="admin"))
    assert changer in client.get(f"/audit?object={template['id']}").text
