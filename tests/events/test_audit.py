"""The events service's audit (who changed agencies, keys, callbacks, limits and event types,
with the person an admin tool names in `Avisa-Actor`) and its agency listing."""

from __future__ import annotations

import uuid

import pytest

from tests.events.conftest import ADMIN

SECRET = "a-callback-secret-0123456789"


@pytest.fixture
def client(shared_client):
    return shared_client


def as_person(person: str) -> dict[str, str]:
    return {**ADMIN, "Avisa-Actor": person}


def new_agency(client, person: str) -> str:
    agency = f"dgt-{uuid.uuid4().hex[:6]}"
    created = client.post(
        "/v1/agencies", json={"id": agency, "name": "Tráfico"}, headers=as_person(person)
    )
    assert created.status_code == 201, created.text
    return agency


def audit_of(client, query: str) -> list[dict]:
    response = client.get(f"/v1/audit?{query}", headers=ADMIN)
    assert response.status_code == 200, response.text
    items: list[dict] = response.json()["items"]
    return items


def test_every_change_is_audited_with_the_person_and_the_diff(client):
    ana = f"ana-{uuid.uuid4().hex[:6]}@example.es"
    agency = new_agency(client, ana)
    key = client.post(f"/v1/agencies/{agency}/keys", headers=as_person(ana)).json()
    callback = {"url": "http://127.0.0.1:9/a", "secret": SECRET}
    client.put(f"/v1/agencies/{agency}/callback", json=callback, headers=as_person(ana))
    moved = {"url": "http://127.0.0.1:9/b", "secret": SECRET}
    client.put(f"/v1/agencies/{agency}/callback", json=moved, headers=as_person(ana))
    client.put(f"/v1/agencies/{agency}/limits", json={"daily_events": 10}, headers=as_person(ana))
    schema = {"type": "object", "required": ["x"]}
    client.put(f"/v1/event-types/t.one?agency={agency}", json=schema, headers=as_person(ana))
    assert (
        client.delete(
            f"/v1/agencies/{agency}/keys/{key['prefix']}", headers=as_person(ana)
        ).status_code
        == 204
    )

    response = client.get(f"/v1/audit?actor={ana}", headers=ADMIN)
    assert SECRET not in response.text and key["key"] not in response.text
    entries = response.json()["items"]
    assert [(e["action"], e["kind"], e["object_id"]) for e in entries] == [
        ("revoke", "key", f"{agency}/{key['prefix']}"),
        ("create", "event-type", f"{agency}/t.one"),
        ("create", "limits", agency),
        ("update", "callback", agency),
        ("create", "callback", agency),
        ("create", "key", f"{agency}/{key['prefix']}"),
        ("create", "agency", agency),
    ]
    assert {(e["actor"], e["person"], e["version"]) for e in entries} == {
        (f"admin:{ana}", ana, None)
    }
    by_kind = {(e["action"], e["kind"]): e["changes"] for e in entries}
    assert by_kind[("create", "agency")] == [
        {"path": "id", "op": "added", "old": None, "new": agency},
        {"path": "name", "op": "added", "old": None, "new": "Tráfico"},
    ]
    assert by_kind[("update", "callback")] == [
        {"path": "url", "op": "changed", "old": "http://127.0.0.1:9/a", "new": "http://127.0.0.1:9/b"}
    ]  # the same secret again: not a change  # fmt: skip
    assert {"path": "secret", "op": "changed", "old": None, "new": None} in by_kind[
        ("create", "callback")
    ]
    assert by_kind[("create", "limits")] == [
        {"path": "requests_per_minute", "op": "added", "old": None, "new": None},
        {"path": "daily_events", "op": "added", "old": None, "new": 10},
    ]
    assert by_kind[("create", "event-type")] == [
        {"path": "schema", "op": "added", "old": None, "new": schema}
    ]


def test_the_audit_is_filtered_by_object_and_paged(client):
    person = f"pablo-{uuid.uuid4().hex[:6]}"
    agency = new_agency(client, person)
    for requests in (10, 20, 30):
        client.put(
            f"/v1/agencies/{agency}/limits",
            json={"requests_per_minute": requests},
            headers=as_person(person),
        )
    limits = audit_of(client, f"object=limits/{agency}")
    assert [e["action"] for e in limits] == ["update", "update", "create"]
    assert limits[0]["changes"] == [
        {"path": "requests_per_minute", "op": "changed", "old": 20, "new": 30}
    ]
    assert [e["kind"] for e in audit_of(client, f"object=agency/{agency}")] == ["agency"]
    assert len(audit_of(client, f"actor=admin:{person}")) == 4

    first = client.get(f"/v1/audit?actor={person}&limit=3", headers=ADMIN).json()
    assert first["next_before"] == first["items"][-1]["seq"]
    rest = client.get(
        f"/v1/audit?actor={person}&limit=3&before={first['next_before']}", headers=ADMIN
    ).json()
    assert [e["kind"] for e in rest["items"]] == ["agency"] and rest["next_before"] is None
    schema = {"type": "object", "required": ["x"]}
    client.put(f"/v1/event-types/t.two?agency={agency}", json=schema, headers=ADMIN)
    schema["required"] = ["y"]
    client.put(f"/v1/event-types/t.two?agency={agency}", json=schema, headers=ADMIN)
    [update, _] = audit_of(client, f"object=event-type/{agency}/t.two")
    assert update["changes"] == [
        {"path": "schema.required", "op": "changed", "old": ["x"], "new": ["y"]}
    ]
    bad = client.get("/v1/audit?object=nothing", headers=ADMIN)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["path"] == "object"


def test_an_agency_changing_its_own_callback_is_recorded_as_the_agency(client):
    agency = new_agency(client, "admin-tool")
    key = client.post(f"/v1/agencies/{agency}/keys", headers=ADMIN).json()["key"]
    own = {"Authorization": f"Bearer {key}", "Avisa-Actor": "someone"}
    callback = {"url": "http://127.0.0.1:9/own", "secret": SECRET}
    assert (
        client.put(f"/v1/agencies/{agency}/callback", json=callback, headers=own).status_code == 200
    )
    assert client.delete(f"/v1/agencies/{agency}/callback", headers=own).status_code == 204
    entries = audit_of(client, f"object=callback/{agency}")
    assert [(e["action"], e["actor"], e["person"]) for e in entries] == [
        ("delete", f"agency:{agency}", None),
        ("create", f"agency:{agency}", None),
    ]
    assert entries[0]["changes"][0] == {
        "path": "url", "op": "removed", "old": "http://127.0.0.1:9/own", "new": None
    }  # fmt: skip
    without_name = audit_of(client, f"object=key/{agency}/{key[4:12]}")
    assert [(e["actor"], e["person"]) for e in without_name] == [("admin", None)]


def test_agencies_are_listed_with_their_keys_and_callback_state(client):
    agency = new_agency(client, "lister")
    for _ in range(2):
        client.post(f"/v1/agencies/{agency}/keys", headers=ADMIN)
    callback = {"url": "http://127.0.0.1:9/list", "secret": SECRET}
    client.put(f"/v1/agencies/{agency}/callback", json=callback, headers=ADMIN)
    bare = new_agency(client, "lister")

    listed = client.get("/v1/agencies", headers=ADMIN).json()["agencies"]

    found = {a["id"]: a for a in listed}
    assert (found[agency]["live_keys"], found[agency]["callback_state"]) == (2, "active")
    assert (found[bare]["live_keys"], found[bare]["callback_state"]) == (0, None)
    assert found[agency]["name"] == "Tráfico"
    assert [a["id"] for a in listed] == sorted(a["id"] for a in listed)
    one = client.get(f"/v1/agencies/{agency}", headers=ADMIN).json()
    assert one == found[agency]
    assert client.get("/v1/agencies/nope-123", headers=ADMIN).status_code == 404
    assert client.get("/v1/agencies").status_code == 401


@pytest.mark.parametrize(
    "query",
    [
        "before=2147483648",
        "before=0",
        "limit=0",
        "object=key",
        "object=" + "k" * 800,
        "kind=" + "x" * 30,
    ],
)
def test_hostile_audit_queries_are_422_naming_the_field(client, query):
    response = client.get(f"/v1/audit?{query}", headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["path"] == query.partition("=")[0]


def test_the_largest_page_bound_finds_the_newest(client):
    new_agency(client, "bound")
    items = audit_of(client, "before=2147483647&limit=1")
    assert len(items) == 1
