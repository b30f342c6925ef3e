"""Agency callbacks against a local receiver: signed POSTs, retries, final errors, suspension."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.events.callbacks import decisions as callbacks
from services.events.callbacks.decisions import Attempt, Health, RetryPolicy, Verdict
from tests.events.conftest import ADMIN, make_settings, running, wait_until
from tests.events.receiver import Receiver, documented_verifier, emit, status_changes

SECRET = "a-secret-of-some-length"


@pytest.fixture(scope="module")
def fast_settings(broker, module_database_url):
    """Callbacks retried within tens of milliseconds; endpoints suspended after 1.5 s failing."""
    return make_settings(
        broker.bootstrap,
        f"t{uuid.uuid4().hex[:10]}.",
        module_database_url,
        callback_backoff_base_s=0.02,
        callback_backoff_max_s=0.1,
        callback_suspend_after_s=1.5,
        callback_max_attempts=50,
        callback_poll_s=0.05,
        callback_timeout_s=2.0,
    )


@pytest.fixture(scope="module")
def client(fast_settings):
    with running(fast_settings) as app_client:
        status_loop = app_client.app.state.status_loop  # type: ignore[attr-defined]
        assert status_loop.assigned.wait(20), "consumer never assigned"
        yield app_client


@pytest.fixture
def receiver():
    endpoint = Receiver(SECRET)
    yield endpoint
    endpoint.close()


def agency_with_key(client) -> tuple[str, dict[str, str]]:
    agency = f"ag-{uuid.uuid4().hex[:8]}"
    assert (
        client.post("/v1/agencies", json={"id": agency, "name": "A"}, headers=ADMIN).status_code
        == 201
    )
    key = client.post(f"/v1/agencies/{agency}/keys", headers=ADMIN).json()["key"]
    return agency, {"Authorization": f"Bearer {key}"}


def subscribe(client, agency, headers, url) -> dict:
    response = client.put(
        f"/v1/agencies/{agency}/callback", json={"url": url, "secret": SECRET}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def callback_state(client, agency, headers) -> dict:
    response = client.get(f"/v1/agencies/{agency}/callback", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_every_status_change_is_posted_signed(client, fast_settings, receiver):
    agency, key = agency_with_key(client)
    shown = subscribe(client, agency, key, receiver.url)
    changes = status_changes(f"{agency}/madrid", 3)

    emit(fast_settings, changes)
    wait_until(lambda: len(receiver.received) == 3, message="three callbacks")

    assert shown["url"] == receiver.url and shown["state"] == "active"
    assert SECRET not in json.dumps(shown)
    assert all(r.verified for r in receiver.received)
    bodies = sorted(receiver.received, key=lambda r: r.body["at"])
    assert [b.body["notification_id"] for b in bodies] == [c.notification_id for c in changes]
    first = bodies[0].body
    assert (first["status"], first["channel"], first["detail"]) == ("sent", "sms", "step 0")
    assert first["event"]["source"] == f"{agency}/madrid"
    assert "provider_reference" not in first
    assert bodies[0].headers["Content-Type"] == "application/json"
    wait_until(lambda: callback_state(client, agency, key)["pending"] == 0, message="settled")
    state = callback_state(client, agency, key)
    assert (state["failures"], state["pending"]) == (0, 0)
    assert state["last_success_at"] is not None


def test_other_agencies_changes_are_not_posted(client, fast_settings, receiver):
    agency, key = agency_with_key(client)
    other, _ = agency_with_key(client)
    subscribe(client, agency, key, receiver.url)

    emit(fast_settings, status_changes(other, 2) + status_changes(agency, 1))
    wait_until(lambda: len(receiver.received) >= 1, message="the agency's callback")
    time.sleep(0.3)  # room for a wrong POST to show up

    assert [r.body["event"]["source"] for r in receiver.received] == [agency]


def test_network_errors_429_and_5xx_are_retried_until_delivered(client, fast_settings, receiver):
    agency, key = agency_with_key(client)
    receiver.script = [500, 429, 503]
    subscribe(client, agency, key, receiver.url)

    emit(fast_settings, status_changes(agency, 1))
    wait_until(lambda: len(receiver.received) == 4, message="three retries")

    deliveries = {r.headers["Avisa-Delivery"] for r in receiver.received}
    assert len(deliveries) == 1  # the same delivery each time, so receivers can dedupe
    assert all(r.verified for r in receiver.received)
    wait_until(lambda: callback_state(client, agency, key)["failures"] == 0, message="reset")
    state = callback_state(client, agency, key)
    assert state["state"] == "active" and state["pending"] == 0
    assert state["last_error"].startswith("HTTP 503")


def test_a_closed_port_is_a_network_error_and_retried(client, fast_settings, receiver):
    agency, key = agency_with_key(client)
    subscribe(client, agency, key, "http://127.0.0.1:9/nothing-listens-here")

    emit(fast_settings, status_changes(agency, 1))
    wait_until(
        lambda: callback_state(client, agency, key)["failures"] >= 2, message="failed attempts"
    )

    state = callback_state(client, agency, key)
    assert state["last_error"].startswith("network error")
    assert state["pending"] == 1
    subscribe(client, agency, key, receiver.url)  # the agency fixes its URL
    wait_until(lambda: len(receiver.received) == 1, message="delivery to the fixed URL")


def test_other_client_errors_are_final(client, fast_settings, receiver):
    agency, key = agency_with_key(client)
    receiver.script = [400]
    subscribe(client, agency, key, receiver.url)

    emit(fast_settings, status_changes(agency, 1))
    wait_until(lambda: callback_state(client, agency, key)["pending"] == 0, message="dropped")
    time.sleep(0.3)

    assert len(receiver.received) == 1
    state = callback_state(client, agency, key)
    assert state["last_error"].startswith("HTTP 400") and state["failures"] == 1


def test_an_endpoint_failing_too_long_is_suspended_and_a_new_put_resumes_it(
    client, fast_settings, receiver
):
    agency, key = agency_with_key(client)
    receiver.default = 503
    subscribe(client, agency, key, receiver.url)

    emit(fast_settings, status_changes(agency, 1))
    wait_until(
        lambda: callback_state(client, agency, key)["state"] == "suspended",
        message="suspension",
    )
    state = callback_state(client, agency, key)
    attempts = len(receiver.received)
    emit(fast_settings, status_changes(agency, 1))  # not queued while suspended
    time.sleep(0.5)

    assert state["suspended_at"] is not None and state["failures"] >= 2
    assert state["last_error"].startswith("HTTP 503")
    assert len(receiver.received) == attempts  # nothing sent while suspended
    assert callback_state(client, agency, key)["pending"] == 1  # the parked delivery
    receiver.default = 200
    resumed = subscribe(client, agency, key, receiver.url)
    assert resumed["state"] == "active" and resumed["failures"] == 0
    wait_until(lambda: receiver.received[-1:] and receiver.received[-1].body, message="resume")
    wait_until(lambda: callback_state(client, agency, key)["pending"] == 0, message="delivered")


def test_only_the_agency_and_admins_manage_its_callback(client, receiver):
    agency, key = agency_with_key(client)
    other, other_key = agency_with_key(client)
    body = {"url": receiver.url, "secret": SECRET}

    foreign_put = client.put(f"/v1/agencies/{agency}/callback", json=body, headers=other_key)
    by_admin = client.put(f"/v1/agencies/{agency}/callback", json=body, headers=ADMIN)
    foreign_get = client.get(f"/v1/agencies/{agency}/callback", headers=other_key)
    foreign_delete = client.delete(f"/v1/agencies/{agency}/callback", headers=other_key)
    anonymous = client.get(f"/v1/agencies/{agency}/callback")
    unknown = client.put("/v1/agencies/nobody/callback", json=body, headers=ADMIN)
    short = client.put(
        f"/v1/agencies/{agency}/callback", json={"url": "ftp://x", "secret": "s"}, headers=key
    )
    none_yet = client.get(f"/v1/agencies/{other}/callback", headers=other_key)
    own_get = client.get(f"/v1/agencies/{agency}/callback", headers=key)
    removed = client.delete(f"/v1/agencies/{agency}/callback", headers=key)

    assert by_admin.status_code == 200
    assert [r.status_code for r in (foreign_put, foreign_get, foreign_delete)] == [403] * 3
    assert anonymous.status_code == 401 and unknown.status_code == 404
    assert short.status_code == 422
    assert sorted(e["path"] for e in short.json()["errors"]) == ["secret", "url"]
    assert none_yet.status_code == 404
    assert own_get.status_code == 200 and SECRET not in own_get.text
    assert removed.status_code == 204
    assert client.get(f"/v1/agencies/{agency}/callback", headers=key).status_code == 404
    for response in (foreign_put, anonymous, unknown, short, none_yet):
        assert response.headers["content-type"] == "application/problem+json"


# --- the pure part --------------------------------------------------------------------------

POLICY = RetryPolicy(base_s=1.0, max_s=600.0, max_attempts=20, suspend_after=timedelta(hours=1))


def test_the_signature_is_what_the_documented_snippet_verifies():
    body = b'{"status":"sent"}'
    header = callbacks.sign(SECRET, body, int(time.time()))
    verify = documented_verifier()

    assert header.startswith("t=") and ",v1=" in header
    assert verify(SECRET, body, header)
    assert not verify("another-secret-value", body, header)
    assert not verify(SECRET, body + b" ", header)
    assert not verify(SECRET, body, callbacks.sign(SECRET, body, int(time.time()) - 3600))
    assert not verify(SECRET, body, "garbage")
    assert callbacks.verify(SECRET, body, header, now=int(time.time()))


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [
        (Attempt(200), Verdict.DELIVERED),
        (Attempt(204), Verdict.DELIVERED),
        (Attempt(None, "ConnectError"), Verdict.RETRY),
        (Attempt(429), Verdict.RETRY),
        (Attempt(500), Verdict.RETRY),
        (Attempt(503), Verdict.RETRY),
        (Attempt(301), Verdict.DROP),
        (Attempt(400), Verdict.DROP),
        (Attempt(404), Verdict.DROP),
        (Attempt(410), Verdict.DROP),
    ],
)
def test_only_network_errors_429_and_5xx_are_retried(attempt, expected):
    assert callbacks.verdict(attempt) is expected


def test_backoff_grows_exponentially_with_jitter_and_honours_retry_after():
    delays = [callbacks.backoff_s(n, POLICY, jitter=0.0, retry_after_s=None) for n in range(1, 6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert callbacks.backoff_s(3, POLICY, jitter=0.999, retry_after_s=None) < 4.0
    assert callbacks.backoff_s(40, POLICY, jitter=0.999, retry_after_s=None) <= 600.0
    assert callbacks.backoff_s(1, POLICY, jitter=0.0, retry_after_s=30) == 30.0
    assert callbacks.backoff_s(1, POLICY, jitter=0.0, retry_after_s=9999) == 600.0


def test_an_hour_of_failures_without_a_success_suspends():
    t0 = datetime(2026, 11, 29, 10, tzinfo=UTC)
    health = Health("active", 0, None, None, None, None)

    first = callbacks.after_failure(health, "HTTP 500", t0, POLICY)
    later = callbacks.after_failure(first, "HTTP 502", t0 + timedelta(minutes=59), POLICY)
    hour = callbacks.after_failure(later, "HTTP 503", t0 + timedelta(hours=1), POLICY)
    healed = callbacks.after_success(later, t0 + timedelta(minutes=59))

    assert (first.failures, first.failing_since, first.state) == (1, t0, "active")
    assert later.state == "active" and later.last_error == "HTTP 502"
    assert (hour.state, hour.suspended_at, hour.failures) == (
        "suspended",
        t0 + timedelta(hours=1),
        3,
    )
    assert (healed.failures, healed.failing_since) == (0, None)
