"""An agency's event becomes a citizen's SMS and email: three real processes, real broker,
real database, the real Twilio and SendGrid SDKs talking to spec-checked fakes."""

from __future__ import annotations

import time
import uuid

import pytest

from avisa.admin import example_event
from tests.e2e.system import AGENCY_KEY, SENDGRID_FROM, TWILIO_FROM, TWILIO_SID, System, wait_for

pytestmark = pytest.mark.e2e


def publish(system: System, event: dict) -> dict:
    with system.client("events", AGENCY_KEY) as client:
        response = client.post(
            "/v1/events", json=event, headers={"Content-Type": "application/cloudevents+json"}
        )
    assert response.status_code == 202, response.text
    return response.json()


def test_an_event_reaches_the_citizen_by_sms_and_email(system: System, providers) -> None:
    applied = system.avisa(
        "rules", "apply", "-f", "examples", "--url", system.services["rules"].url
    )
    assert applied.returncode == 0, applied.stderr
    event = example_event(event_id=f"demo-{uuid.uuid4().hex}")
    assert publish(system, event) == {"accepted": 1, "duplicates": 0, "ids": [event["id"]]}

    [sms] = wait_for(providers.twilio_requests)
    assert sms["user"] == TWILIO_SID
    assert sms["form"]["To"] == "+34600111222"
    assert sms["form"]["From"] == TWILIO_FROM
    assert "Ana" in sms["form"]["Body"]

    [email] = wait_for(providers.sendgrid_requests)
    body = email["body"]
    assert body["from"]["email"] == SENDGRID_FROM
    assert body["personalizations"][0]["to"] == [{"email": "ana@example.es"}]
    assert body["subject"] or body["personalizations"][0].get("subject")
    assert {c["type"] for c in body["content"]} == {"text/plain", "text/html"}
    assert "Ana" in next(c["value"] for c in body["content"] if c["type"] == "text/plain")

    def sent_on_both_channels() -> dict | None:
        with system.client("events", AGENCY_KEY) as client:
            response = client.get(f"/v1/events/{event['id']}")
        if response.status_code != 200 or not response.json()["notifications"]:
            return None
        [notification] = response.json()["notifications"]
        sent = {h["channel"] for h in notification["history"] if h["status"] == "sent"}
        return notification if sent == {"sms", "email"} else None

    notification = wait_for(sent_on_both_channels)
    assert notification["rule"] == "licencia-aviso"
    assert notification["status"] == "sent"
    assert notification["history"][0]["status"] == "queued"

    def decided() -> dict | None:
        with system.client("events", AGENCY_KEY) as client:
            decisions = client.get(f"/v1/events/{event['id']}").json()["decisions"]
        return next((d for d in decisions if d["rule"] == "licencia-aviso"), None)

    decision = wait_for(decided)
    assert decision["matched"] is True
    assert decision["notifications"] == [notification["id"]]

    # The same event again is a duplicate: accepted once, nothing sent twice.
    assert publish(system, event)["duplicates"] == 1
    with system.client("events", AGENCY_KEY) as client:
        later = client.post(
            "/v1/events",
            json=example_event(),
            headers={"Content-Type": "application/cloudevents+json"},
        )
    assert later.status_code == 202
    # SMS and email of the second event may arrive in either order: wait for both.
    wait_for(
        lambda: len(providers.twilio_requests()) >= 2 and len(providers.sendgrid_requests()) >= 2
    )
    time.sleep(1)  # room for a wrong third send to show up before counting
    assert len(providers.twilio_requests()) == 2
    assert len(providers.sendgrid_requests()) == 2


def test_an_invalid_event_is_refused_and_sends_nothing(system: System, providers) -> None:
    event = example_event()
    event["data"]["citizen"]["phone"] = "612"
    with system.client("events", AGENCY_KEY) as client:
        response = client.post(
            "/v1/events", json=event, headers={"Content-Type": "application/cloudevents+json"}
        )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["path"] for e in response.json()["errors"]] == ["data.citizen.phone"]
    with system.client("events", AGENCY_KEY) as client:
        assert client.get(f"/v1/events/{event['id']}").status_code == 404


def test_every_service_reports_health_readiness_and_metrics(system: System) -> None:
    for name in ("events", "rules", "notifier"):
        with system.client(name) as client:
            assert client.get("/healthz").status_code == 200
            assert client.get("/readyz").json()["status"] == "ready"
            metrics = client.get("/metrics")
            assert metrics.status_code == 200
            assert "# TYPE" in metrics.text
            assert client.get("/openapi.json").json()["info"]["title"]
