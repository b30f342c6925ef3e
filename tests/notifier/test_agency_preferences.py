"""Preferences with agency keys: an agency reads and changes only what it set or what its own
events carried; its settings apply to its own notifications only; the citizen's opt-outs are
not its to undo; a citizen it does not know is a 404."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import text

from common.auth import hash_key
from common.db import alembic_config, make_engine, make_sessions
from schemas.keys import KeyRecord
from services.notifier.main import MIGRATIONS, VERSION_TABLE
from services.notifier.models import AgencyPreferences, Preferences
from tests.notifier import test_citizens
from tests.notifier.factories import make_request
from tests.notifier.test_citizens import (
    INBOUND,
    deliver,
    inbound,
    twilio_post,
)
from tests.notifier.test_delivery import ADMIN, statuses

CITIZEN = "ES-12345678Z"
PREFS = f"/v1/citizens/{CITIZEN}/preferences"

notifier = test_citizens.notifier  # the fixture


def agency_key(client, agency_id: str) -> dict[str, str]:
    """A key of `agency_id`, as if keys.v1 had brought its record."""
    key = f"avk_{uuid.uuid4().hex}"
    record = KeyRecord(
        agency_id=agency_id, prefix=key[4:12], key_hash=hash_key(key), at=datetime.now(UTC)
    )
    client.app.state.agency_keys.apply(record)
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def agencies(notifier):
    client, settings = notifier
    return client, settings, agency_key(client, "dgt"), agency_key(client, "sepe")


def test_an_agency_sees_what_its_events_carried_and_nothing_of_others(agencies):
    client, settings, dgt, sepe = agencies
    client.put(PREFS, json={"email": "private@example.es", "locale": "en"}, headers=ADMIN)
    deliver(settings, make_request())  # a dgt event for the citizen
    view = client.get(PREFS, headers=dgt)
    assert view.status_code == 200, view.text
    found = view.json()
    assert (found["phone"], found["email"], found["locale"]) == (
        "+34600111222",
        "ana@example.es",
        None,
    )
    unknown = client.get(PREFS, headers=sepe)
    assert (
        unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    )
    assert client.get("/v1/citizens/nobody/preferences", headers=sepe).status_code == 404


def test_an_agencys_settings_apply_to_its_own_notifications_only(agencies, providers):
    client, settings, dgt, sepe = agencies
    put = client.put(PREFS, json={"phone": "+34699000111"}, headers=sepe)
    assert put.status_code == 200 and put.json()["changed_by"] == "agency:sepe"
    assert client.get(PREFS, headers=sepe).json()["phone"] == "+34699000111"
    assert client.get(PREFS, headers=ADMIN).json()["phone"] is None  # the shared row: untouched
    request = make_request(channels=("sms",))  # dgt's event, with the citizen's own phone
    assert statuses(deliver(settings, request), request.id)[-1] == ("sent", "sms")
    assert [r["form"]["To"] for r in providers.twilio_requests()] == ["+34600111222"]
    assert client.get(PREFS, headers=dgt).json()["phone"] == "+34600111222"


def test_an_agency_cannot_undo_the_citizens_stop_but_the_citizen_and_the_admin_can(agencies):
    client, settings, dgt, _ = agencies
    deliver(settings, make_request(channels=("email",)))
    client.put(PREFS, json={"phone": "+34600111222"}, headers=ADMIN)
    twilio_post(client, INBOUND, inbound("+34600111222", "STOP"))
    mine = client.get(PREFS, headers=dgt).json()
    assert (mine["opt_out"], mine["opt_out_locked"]) == ([], ["sms"])
    undo = client.put(PREFS, json={"opt_out": []}, headers=dgt)
    assert undo.status_code == 200 and undo.json()["opt_out_locked"] == ["sms"]
    blocked = make_request(channels=("sms",))
    assert deliver(settings, blocked)[-1].detail == "opted out"
    twilio_post(client, INBOUND, inbound("+34600111222", "START"))
    assert client.get(PREFS, headers=dgt).json()["opt_out_locked"] == []
    client.put(PREFS, json={"opt_out": ["sms"], "phone": "+34600111222"}, headers=ADMIN)
    assert client.get(PREFS, headers=dgt).json()["opt_out_locked"] == ["sms"]
    client.put(PREFS, json={"phone": "+34600111222"}, headers=ADMIN)
    again = make_request(channels=("sms",))
    assert statuses(deliver(settings, again), again.id)[-1] == ("sent", "sms")


def test_an_agencys_own_opt_out_stops_its_notifications_only(agencies):
    client, settings, dgt, sepe = agencies
    assert client.put(PREFS, json={"opt_out": ["sms"]}, headers=sepe).status_code == 200
    ours = make_request(channels=("sms",))  # dgt's
    assert statuses(deliver(settings, ours), ours.id)[-1] == ("sent", "sms")
    assert client.put(PREFS, json={"opt_out": ["sms"]}, headers=dgt).status_code == 200
    theirs = make_request(channels=("sms",))
    assert deliver(settings, theirs)[-1].detail == "opted out"
    assert client.get(PREFS, headers=ADMIN).json()["opt_out"] == []


def test_a_citizen_id_too_long_is_a_422_for_reads_too(agencies):
    client, _, dgt, _ = agencies
    for headers in (dgt, ADMIN):
        answer = client.get(f"/v1/citizens/{'x' * 600}/preferences", headers=headers)
        assert answer.status_code == 422, answer.text


@pytest.mark.parametrize(
    "body",
    [
        '{"timezone": "\\ud800"}',
        '{"locale": "\\ud800"}',
        '{"email": "a\\ud800@example.es"}',
        '{"phone": "+3460011122\\ud800"}',
        '{"quiet_hours": {"start": "\\ud800", "end": "08:00"}}',
        '{"channels": ["\\ud800"]}',
        '{"timezone": "' + "A/" * 5000 + '"}',
        '{"quiet_hours": {"start": "99999999999999999999:00", "end": "08:00"}}',
        '{"locale": 1e999}',
    ],
)
def test_hostile_preference_bodies_are_a_422(agencies, body):
    client, _, dgt, _ = agencies
    for headers in (dgt, ADMIN):
        answer = client.put(
            PREFS, content=body, headers=headers | {"Content-Type": "application/json"}
        )
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"


def test_shared_rows_an_agency_set_before_become_its_own(empty_database_url):
    engine = make_engine(empty_database_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(MIGRATIONS, VERSION_TABLE, connection), "notifier_0005")
        connection.execute(
            text(
                "INSERT INTO notifier_preferences (citizen_id, opt_out, phone, locale, updated_at,"
                " changed_by, changed_at) VALUES ('ES-1', :opt_out, '+34699000111', 'en', :at,"
                " 'agency:sepe', :at), ('ES-2', '[]', '+34600000002', 'es', :at, 'admin', :at)"
            ),
            {"opt_out": '["sms"]', "at": datetime.now(UTC)},
        )
    with engine.begin() as connection:
        command.upgrade(alembic_config(MIGRATIONS, VERSION_TABLE, connection), "head")
    sessions = make_sessions(engine)
    with sessions() as session:
        moved = session.get(AgencyPreferences, ("ES-1", "sepe"))
        assert moved is not None and (moved.phone, moved.locale, moved.opt_out) == (
            "+34699000111",
            "en",
            ["sms"],
        )
        shared = session.get(Preferences, "ES-1")
        assert shared is not None
        assert (shared.phone, shared.locale, shared.changed_by, shared.opt_out) == (
            None,
            None,
            None,
            ["sms"],
        )
        kept = session.get(Preferences, "ES-2")
        assert kept is not None and (kept.phone, kept.changed_by) == ("+34600000002", "admin")
        assert session.get(AgencyPreferences, ("ES-2", "admin")) is None
    engine.dispose()
