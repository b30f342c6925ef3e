"""Citizen preferences with an agency key: the events service publishes its key records
(hashes, never keys) on keys.v1 and the notifier verifies agency keys against them - both
services running for real, on one broker and one database, sharing no table."""

from __future__ import annotations

import uuid

import pytest

from common.auth import hash_key
from schemas.keys import KeyRecord
from tests.events.conftest import ADMIN as EVENTS_ADMIN
from tests.events.conftest import make_settings as events_settings
from tests.events.conftest import running as events_running
from tests.notifier.kafkatools import eventually, read_until
from tests.notifier.test_delivery import ADMIN, make_settings, running

PREFS = "/v1/citizens/ES-1/preferences"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def services(broker, topic_prefix, database_url, tmp_path):
    """The events service and the notifier, started in that order."""
    events = events_settings(broker.bootstrap, topic_prefix, database_url)
    notifier = make_settings(
        broker, topic_prefix, database_url, tmp_path, consumer_group_prefix=topic_prefix
    )
    with events_running(events) as gateway, running(notifier) as client:
        eventually(client.app.state.key_feed.caught_up.is_set)  # type: ignore[attr-defined]
        yield gateway, client, notifier


def new_key(gateway) -> tuple[str, str]:
    agency = f"dgt-{uuid.uuid4().hex[:6]}"
    created = gateway.post("/v1/agencies", json={"id": agency, "name": "DGT"}, headers=EVENTS_ADMIN)
    assert created.status_code == 201, created.text
    key = gateway.post(f"/v1/agencies/{agency}/keys", headers=EVENTS_ADMIN).json()
    return agency, key["key"]


def accepted(client, key: str) -> bool:
    """The key is known (a citizen the agency never dealt with is a 404, past the 401)."""
    return client.get(PREFS, headers=bearer(key)).status_code in (200, 404)


def test_an_agency_key_reads_and_changes_its_own_preferences_and_the_change_is_attributed(
    services,
):
    gateway, client, _ = services
    agency, key = new_key(gateway)
    eventually(lambda: accepted(client, key))
    assert client.get(PREFS, headers=bearer(key)).status_code == 404  # unknown to it yet
    put = client.put(PREFS, json={"opt_out": ["sms"], "locale": "en"}, headers=bearer(key))
    assert put.status_code == 200
    assert put.json()["changed_by"] == f"agency:{agency}" and put.json()["changed_at"]
    mine = client.get(PREFS, headers=bearer(key)).json()
    assert (mine["opt_out"], mine["locale"]) == (["sms"], "en")
    shared = client.get(PREFS, headers=ADMIN).json()  # the agency's layer is its own
    assert (shared["opt_out"], shared["locale"], shared["changed_by"]) == ([], None, None)
    again = client.put(PREFS, json=shared | {"locale": "es"}, headers=ADMIN)  # read-modify-write
    assert again.status_code == 200 and again.json()["changed_by"] == "admin"
    assert client.get(PREFS, headers=bearer(key)).json()["locale"] == "en"
    assert client.get("/v1/notifications/any", headers=bearer(key)).status_code == 403


def test_a_revoked_key_is_refused_once_revoked(services):
    gateway, client, _ = services
    agency, key = new_key(gateway)
    eventually(lambda: accepted(client, key))
    prefix = key[4:12]
    revoked = gateway.delete(f"/v1/agencies/{agency}/keys/{prefix}", headers=EVENTS_ADMIN)
    assert revoked.status_code == 204
    eventually(lambda: client.get(PREFS, headers=bearer(key)).status_code == 401)
    refused = client.put(PREFS, json={"opt_out": ["email"]}, headers=bearer(key))
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert client.get(PREFS, headers=ADMIN).json()["opt_out"] == []


def test_unknown_and_missing_keys_are_refused_and_the_admin_key_still_works(services):
    _, client, _ = services
    assert client.get(PREFS, headers=bearer("avk_" + "x" * 43)).status_code == 401
    assert client.get(PREFS).status_code == 401
    assert client.put(PREFS, json={}, headers=bearer("nope")).status_code == 401
    put = client.put(PREFS, json={"channels": ["email"]}, headers=ADMIN)
    assert put.status_code == 200 and put.json()["changed_by"] == "admin"


def test_a_restarted_notifier_relearns_every_key_from_the_topic(services):
    gateway, client, settings = services
    agency, live = new_key(gateway)
    other, gone = new_key(gateway)
    gateway.delete(f"/v1/agencies/{other}/keys/{gone[4:12]}", headers=EVENTS_ADMIN)
    eventually(lambda: accepted(client, live) and not accepted(client, gone))
    with running(settings) as restarted:
        eventually(restarted.app.state.key_feed.caught_up.is_set)  # type: ignore[attr-defined]
        assert accepted(restarted, live) and not accepted(restarted, gone)
    records = [
        KeyRecord.model_validate_json(r.value)
        for r in read_until(settings.kafka_bootstrap, settings.topics.keys, bool)
    ]
    assert any(r.key_hash == hash_key(live) and r.agency_id == agency for r in records)
    assert all(live not in r.model_dump_json() for r in records)  # hashes only, never keys
