"""Agencies and their keys: created by admins, shown once, stored hashed, revocable."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import create_engine, text

from common.auth import hash_key
from tests.events.conftest import ADMIN, DEMO, STRUCTURED, make_event


@pytest.fixture
def client(shared_client):
    return shared_client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def publish(client, key: str, source: str):
    return client.post(
        "/v1/events",
        content=json.dumps(make_event(source=source)),
        headers={**bearer(key), "Content-Type": STRUCTURED},
    )


def new_agency(client) -> str:
    agency = f"dgt-{uuid.uuid4().hex[:6]}"
    response = client.post(
        "/v1/agencies", json={"id": agency, "name": "Dirección de Tráfico"}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    assert response.json()["id"] == agency
    return agency


def test_an_admin_creates_an_agency_and_a_key_that_publishes_for_it(client):
    agency = new_agency(client)
    created = client.post(f"/v1/agencies/{agency}/keys", headers=ADMIN)

    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("avk_")
    assert created.json()["prefix"] == key[4:12]
    assert publish(client, key, agency).status_code == 202
    assert publish(client, key, f"{agency}/madrid").status_code == 202
    assert publish(client, key, "demo").status_code == 403


def test_keys_are_listed_by_prefix_and_stored_hashed(client, shared_settings):
    agency = new_agency(client)
    key = client.post(f"/v1/agencies/{agency}/keys", headers=ADMIN).json()["key"]

    listing = client.get(f"/v1/agencies/{agency}/keys", headers=ADMIN)

    assert listing.status_code == 200
    assert [k["prefix"] for k in listing.json()["keys"]] == [key[4:12]]
    assert key not in listing.text
    engine = create_engine(shared_settings.database_url)
    with engine.connect() as connection:
        stored = (
            connection.execute(
                text("SELECT key_hash FROM events_keys WHERE agency_id = :a"), {"a": agency}
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert stored == [hash_key(key)]


def test_a_revoked_key_is_refused_at_once(client):
    agency = new_agency(client)
    key = client.post(f"/v1/agencies/{agency}/keys", headers=ADMIN).json()["key"]
    assert publish(client, key, agency).status_code == 202  # now cached by the lookup

    revoked = client.delete(f"/v1/agencies/{agency}/keys/{key[4:12]}", headers=ADMIN)

    assert revoked.status_code == 204
    assert publish(client, key, agency).status_code == 401
    listing = client.get(f"/v1/agencies/{agency}/keys", headers=ADMIN).json()["keys"]
    assert listing[0]["revoked_at"] is not None
    again = client.delete(f"/v1/agencies/{agency}/keys/{key[4:12]}", headers=ADMIN)
    assert again.status_code == 404


def test_only_admins_manage_agencies_and_mistakes_are_problems(client):
    agency = new_agency(client)
    duplicate = client.post("/v1/agencies", json={"id": agency, "name": "x"}, headers=ADMIN)
    bad_slug = client.post("/v1/agencies", json={"id": "Not A Slug", "name": "x"}, headers=ADMIN)
    by_agency = client.post("/v1/agencies", json={"id": "mine", "name": "x"}, headers=DEMO)
    unknown = client.post("/v1/agencies/nobody/keys", headers=ADMIN)
    anonymous = client.get(f"/v1/agencies/{agency}/keys")

    assert duplicate.status_code == 409
    assert bad_slug.status_code == 422
    assert [e["path"] for e in bad_slug.json()["errors"]] == ["id"]
    assert by_agency.status_code == 403
    assert unknown.status_code == 404
    assert anonymous.status_code == 401
    for response in (duplicate, bad_slug, by_agency, unknown, anonymous):
        assert response.headers["content-type"] == "application/problem+json"


def test_the_demo_agency_exists_in_development_only(client, shared_settings, tmp_path):
    from services.events.main import migrate
    from tests.events.conftest import make_settings, running

    assert publish(client, DEMO["Authorization"][7:], "demo").status_code == 202
    production = make_settings(
        shared_settings.kafka_bootstrap,
        shared_settings.topic_prefix,
        f"sqlite:///{tmp_path / 'prod.db'}",
        env="production",
        consumer_group_prefix=f"{shared_settings.topic_prefix}prod-",
    )
    migrate(production)
    with running(production) as prod_client:
        assert publish(prod_client, DEMO["Authorization"][7:], "demo").status_code == 401


def test_production_refuses_the_development_admin_key(tmp_path):
    from common.settings import DEV_ADMIN_KEY, ConfigurationError
    from services.events.main import run
    from tests.events.conftest import make_settings

    unsafe = make_settings(
        "127.0.0.1:1",
        "x.",
        f"sqlite:///{tmp_path / 'x.db'}",
        env="production",
        admin_key=DEV_ADMIN_KEY,
    )
    with pytest.raises(ConfigurationError):
        run(unsafe, host="127.0.0.1", port=1)
    assert not (tmp_path / "x.db").exists()
