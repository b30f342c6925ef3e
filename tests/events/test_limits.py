"""Rate limits per key (token bucket, 429 + Retry-After) and the daily cap per agency."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from services.events.limits import RateLimiter, TokenBucket, seconds_to_midnight
from tests.events.conftest import ADMIN, BATCH, DEMO, STRUCTURED, make_event


@pytest.fixture
def client(shared_client):
    return shared_client


def agency_with_key(client) -> tuple[str, dict[str, str]]:
    agency = f"lim-{uuid.uuid4().hex[:8]}"
    assert (
        client.post("/v1/agencies", json={"id": agency, "name": "L"}, headers=ADMIN).status_code
        == 201
    )
    key = client.post(f"/v1/agencies/{agency}/keys", headers=ADMIN).json()["key"]
    return agency, {"Authorization": f"Bearer {key}"}


def set_limits(client, agency, **limits):
    response = client.put(f"/v1/agencies/{agency}/limits", json=limits, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def publish(client, key, events):
    return client.post(
        "/v1/events", content=json.dumps(events), headers={**key, "Content-Type": BATCH}
    )


def test_a_key_over_its_rate_gets_429_with_retry_after(client):
    agency, key = agency_with_key(client)
    shown = set_limits(client, agency, requests_per_minute=5)
    second_key = {
        "Authorization": "Bearer "
        + client.post(f"/v1/agencies/{agency}/keys", headers=ADMIN).json()["key"]
    }

    answers = [client.get(f"/v1/agencies/{agency}/limits", headers=key) for _ in range(6)]
    refused = answers[-1]

    assert shown["requests_per_minute"] == 5 and shown["custom"] is True
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["Retry-After"]) <= 12  # one token every 12 s
    assert "5 requests a minute" in refused.json()["detail"]
    # the bucket is per key, and admins are not limited
    assert client.get(f"/v1/agencies/{agency}/limits", headers=second_key).status_code == 200
    assert all(
        client.get(f"/v1/agencies/{agency}/limits", headers=ADMIN).status_code == 200
        for _ in range(10)
    )


def test_publishing_over_the_rate_gets_429_with_retry_after_and_keeps_nothing(client):
    agency, key = agency_with_key(client)
    set_limits(client, agency, requests_per_minute=3)
    events = [make_event(source=agency) for _ in range(4)]

    answers = [
        client.post(
            "/v1/events", content=json.dumps(event), headers={**key, "Content-Type": STRUCTURED}
        )
        for event in events
    ]
    refused = answers[-1]

    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["Retry-After"]) <= 20  # one token every 20 s
    assert client.get(f"/v1/events/{events[-1]['id']}", headers=ADMIN).status_code == 404
    assert client.get(f"/v1/events/{events[0]['id']}", headers=ADMIN).status_code == 200


def test_the_daily_cap_counts_new_events_only_and_names_the_cap(client):
    agency, key = agency_with_key(client)
    set_limits(client, agency, daily_events=3)
    first = [make_event(source=agency), make_event(source=agency)]

    accepted = publish(client, key, first)
    over = publish(client, key, [make_event(source=agency), make_event(source=agency)])
    resent = publish(client, key, first)
    last = publish(client, key, [make_event(source=agency)])
    after = publish(client, key, [make_event(source=agency)])
    usage = client.get(f"/v1/agencies/{agency}/limits", headers=key).json()

    assert accepted.status_code == 202
    assert over.status_code == 429
    assert over.headers["content-type"] == "application/problem+json"
    assert "3 events accepted a day" in over.json()["detail"]
    assert int(over.headers["Retry-After"]) >= 1
    assert resent.status_code == 202 and resent.json()["duplicates"] == 2
    assert last.status_code == 202  # the refused batch reserved nothing
    assert after.status_code == 429
    assert usage["used_today"] == 3 and usage["daily_events"] == 3


def test_a_refused_event_can_be_sent_again_once_the_cap_allows(client):
    agency, key = agency_with_key(client)
    set_limits(client, agency, daily_events=1)
    assert publish(client, key, [make_event(source=agency)]).status_code == 202
    event = make_event(source=agency)
    assert publish(client, key, [event]).status_code == 429

    set_limits(client, agency, daily_events=2)
    again = publish(client, key, [event])

    assert again.status_code == 202 and again.json()["accepted"] == 1  # no pending row left


def test_only_admins_set_limits_and_agencies_read_only_their_own(client):
    agency, key = agency_with_key(client)
    other, other_key = agency_with_key(client)

    by_agency = client.put(
        f"/v1/agencies/{agency}/limits", json={"requests_per_minute": 10**6}, headers=key
    )
    foreign = client.get(f"/v1/agencies/{agency}/limits", headers=other_key)
    defaults = client.get(f"/v1/agencies/{other}/limits", headers=other_key).json()
    invalid = client.put(
        f"/v1/agencies/{agency}/limits", json={"requests_per_minute": 0}, headers=ADMIN
    )
    unknown = client.put("/v1/agencies/nobody/limits", json={}, headers=ADMIN)

    assert by_agency.status_code == 403 and foreign.status_code == 403
    assert defaults == {
        "agency_id": other,
        "requests_per_minute": 3000,
        "daily_events": 250_000,
        "used_today": 0,
        "custom": False,
    }
    assert invalid.status_code == 422
    assert [e["path"] for e in invalid.json()["errors"]] == ["requests_per_minute"]
    assert unknown.status_code == 404


def test_the_demo_key_publishes_within_the_default_rate(client):
    response = client.post(
        "/v1/events", content=json.dumps(make_event()), headers={**DEMO, "Content-Type": STRUCTURED}
    )
    assert response.status_code == 202


# --- the pure part --------------------------------------------------------------------------


def test_a_bucket_allows_a_minute_of_burst_then_refills_steadily():
    bucket = TokenBucket(per_minute=60, tokens=60.0, updated=0.0)

    burst = [bucket.take(0.0) for _ in range(60)]
    refused = bucket.take(0.0)
    half = bucket.take(0.5)
    one = bucket.take(1.0)

    assert burst == [0.0] * 60
    assert refused == pytest.approx(1.0)
    assert half == pytest.approx(0.5)
    assert one == 0.0


def test_the_limiter_keeps_a_bucket_per_key_and_applies_new_rates():
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])

    assert [limiter.wait_s("a", 2) for _ in range(3)] == [0.0, 0.0, pytest.approx(30.0)]
    assert limiter.wait_s("b", 2) == 0.0
    assert limiter.wait_s("a", 120) == pytest.approx(0.5)  # a faster rate refills faster
    now[0] = 1.0
    assert limiter.wait_s("a", 120) == 0.0


def test_the_daily_cap_resets_at_utc_midnight():
    assert seconds_to_midnight(datetime(2026, 11, 29, 23, 59, 30, tzinfo=UTC)) == 30
