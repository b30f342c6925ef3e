"""Event-type schemas: registered per agency, checked as schemas, enforced at the door."""

from __future__ import annotations

import json
import uuid

import pytest

from services.events.eventtypes.registry import schema_errors
from tests.events.conftest import ADMIN, BATCH, STRUCTURED, make_event

EXPIRING = {
    "type": "object",
    "required": ["citizen", "expires_on"],
    "properties": {
        "expires_on": {"type": "string", "format": "date"},
        "category": {"enum": ["A", "B", "C"]},
        "office": {"$ref": "#/$defs/office"},
    },
    "$defs": {"office": {"type": "object", "required": ["code"]}},
}


@pytest.fixture
def client(shared_client):
    return shared_client


def agency_with_key(client) -> tuple[str, dict[str, str]]:
    agency = f"et-{uuid.uuid4().hex[:8]}"
    assert (
        client.post("/v1/agencies", json={"id": agency, "name": "T"}, headers=ADMIN).status_code
        == 201
    )
    key = client.post(f"/v1/agencies/{agency}/keys", headers=ADMIN).json()["key"]
    return agency, {"Authorization": f"Bearer {key}"}


def post(client, key, body, content_type=STRUCTURED):
    return client.post(
        "/v1/events", content=json.dumps(body), headers={**key, "Content-Type": content_type}
    )


def with_data(agency, **data):
    """An event of the agency whose data is the citizen and exactly these fields."""
    event = make_event(source=agency)
    event["data"] = {"citizen": event["data"]["citizen"], **data}
    return event


def test_events_of_a_registered_type_are_checked_and_errors_name_the_data_path(client):
    agency, key = agency_with_key(client)
    created = client.put("/v1/event-types/license.expiring", json=EXPIRING, headers=key)

    good = post(client, key, with_data(agency, expires_on="2027-01-15", category="B"))
    typo = post(client, key, with_data(agency, expires_om="2027-01-15"))
    wrong = post(client, key, with_data(agency, expires_on="15/01/2027", category="Z", office={}))
    batch = post(
        client,
        key,
        [with_data(agency, expires_on="2027-01-15"), with_data(agency, expires_on=20270115)],
        BATCH,
    )
    other_type = post(client, key, {**with_data(agency), "type": "license.renewed"})
    admin = post(client, ADMIN, with_data(agency))

    assert created.status_code == 201, created.text
    assert created.json()["schema"] == EXPIRING
    assert good.status_code == 202, good.text
    assert typo.status_code == 422
    assert typo.json()["errors"] == [
        {"path": "data.expires_on", "message": "is required by the event type's schema"}
    ]
    assert {e["path"] for e in wrong.json()["errors"]} == {
        "data.expires_on",
        "data.category",
        "data.office.code",
    }
    assert batch.status_code == 422
    assert [e["path"] for e in batch.json()["errors"]] == ["[1].data.expires_on"]
    assert other_type.status_code == 202  # unregistered types only meet the envelope
    assert admin.status_code == 422  # the source's agency's schema applies to admins too


def test_a_type_is_read_listed_replaced_and_deleted(client):
    agency, key = agency_with_key(client)
    client.put("/v1/event-types/a.one", json={"type": "object"}, headers=key)
    replaced = client.put("/v1/event-types/a.one", json=EXPIRING, headers=key)
    client.put("/v1/event-types/a.two", json={"type": "object"}, headers=key)

    one = client.get("/v1/event-types/a.one", headers=key)
    listing = client.get("/v1/event-types", headers=key)
    deleted = client.delete("/v1/event-types/a.one", headers=key)
    gone = client.get("/v1/event-types/a.one", headers=key)
    again = client.delete("/v1/event-types/a.one", headers=key)

    assert replaced.status_code == 200
    assert one.json()["schema"] == EXPIRING and one.json()["agency_id"] == agency
    assert [t["type"] for t in listing.json()["event_types"]] == ["a.one", "a.two"]
    assert deleted.status_code == 204
    assert gone.status_code == 404 and again.status_code == 404
    assert post(client, key, {**with_data(agency), "type": "a.one"}).status_code == 202


def test_bad_schemas_are_refused_with_where(client):
    _agency, key = agency_with_key(client)

    not_schema = client.put("/v1/event-types/x", json={"type": "objekt"}, headers=key)
    remote = client.put(
        "/v1/event-types/x",
        json={"properties": {"a": {"$ref": "https://example.com/s.json"}}},
        headers=key,
    )
    not_object = client.put("/v1/event-types/x", json=[1, 2], headers=key)

    assert not_schema.status_code == 422
    assert not_schema.json()["errors"][0]["path"] == "type"
    assert remote.status_code == 422
    assert remote.json()["errors"][0]["path"] == "properties.a"
    assert not_object.status_code == 422
    for response in (not_schema, remote, not_object):
        assert response.headers["content-type"] == "application/problem+json"


def test_agencies_cannot_touch_each_others_types_and_admins_name_the_agency(client):
    agency, key = agency_with_key(client)
    other, other_key = agency_with_key(client)
    client.put("/v1/event-types/mine", json=EXPIRING, headers=key)

    foreign_put = client.put(f"/v1/event-types/mine?agency={agency}", json={}, headers=other_key)
    foreign_get = client.get(f"/v1/event-types/mine?agency={agency}", headers=other_key)
    foreign_list = client.get(f"/v1/event-types?agency={agency}", headers=other_key)
    foreign_delete = client.delete(f"/v1/event-types/mine?agency={agency}", headers=other_key)
    own_view = client.get("/v1/event-types/mine", headers=other_key)
    admin_without = client.put("/v1/event-types/mine", json={}, headers=ADMIN)
    admin_put = client.put(f"/v1/event-types/theirs?agency={other}", json={}, headers=ADMIN)
    admin_get = client.get(f"/v1/event-types/mine?agency={agency}", headers=ADMIN)
    admin_unknown = client.put("/v1/event-types/x?agency=nobody", json={}, headers=ADMIN)

    assert [r.status_code for r in (foreign_put, foreign_get, foreign_list, foreign_delete)] == [
        403
    ] * 4
    assert own_view.status_code == 404  # an agency's namespace holds only its own types
    assert admin_without.status_code == 422
    assert admin_put.status_code == 201 and admin_put.json()["agency_id"] == other
    assert admin_get.status_code == 200
    assert admin_unknown.status_code == 404
    assert client.get("/v1/event-types/mine", headers=key).status_code == 200


def test_schema_errors_name_their_place():
    assert schema_errors(EXPIRING) == []
    assert schema_errors({"properties": {"a": {"type": 3}}})[0]["path"] == "properties.a.type"
