"""An event's decision trace, and content retention: payloads go; ids, hashes, trace stay."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from schemas.events import EventRef
from schemas.notifications import Channel, Status, StatusChange
from services.events.config import Settings
from services.events.flows import envelope_only
from tests.events.conftest import DEMO, STRUCTURED, make_event, make_settings, running, wait_until
from tests.events.receiver import emit

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def client(broker, module_database_url):
    """Contents kept for about a second, purged every 0.1 s."""
    settings = make_settings(
        broker.bootstrap,
        f"t{uuid.uuid4().hex[:10]}.",
        module_database_url,
        content_retention_days=1.0 / 86400,
        purge_interval_s=0.1,
    )
    with running(settings) as app_client:
        status_loop = app_client.app.state.status_loop  # type: ignore[attr-defined]
        assert status_loop.assigned.wait(20), "consumer never assigned"
        app_client.settings = settings
        yield app_client


def post(client, event):
    return client.post(
        "/v1/events", content=json.dumps(event), headers={**DEMO, "Content-Type": STRUCTURED}
    )


def decisions(event) -> list[StatusChange]:
    ref = EventRef(source="demo", id=event["id"], type=event["type"], subject=event["subject"])

    def change(nid, rule, status, minutes, *, detail=None, channel=None, **extra):
        return StatusChange(
            notification_id=nid,
            event=ref,
            rule=rule,
            status=status,
            at=T0 + timedelta(minutes=minutes),
            detail=detail,
            channel=channel,
            **extra,
        )

    return [
        change("n-now", "aviso", Status.QUEUED, 0, channel=Channel.SMS),
        change("n-now", "aviso", Status.SENT, 1, detail="SM1", channel=Channel.SMS),
        change("n-mail", "aviso-email", Status.SUPPRESSED, 2, detail="opted out of email"),
        change("n-7d", "recordatorio", Status.SCHEDULED, 3, scheduled_for=T0 + timedelta(days=20)),
        change("n-7d", "recordatorio", Status.CANCELLED, 4, detail="cancelled by license.renewed"),
    ]


def test_the_trace_lists_every_decision_and_outlives_the_content(client):
    event = make_event(id=f"tr-{uuid.uuid4().hex[:8]}")
    assert post(client, event).status_code == 202
    emit(client.settings, decisions(event))

    wait_until(
        lambda: len(client.get(f"/v1/events/{event['id']}", headers=DEMO).json()["trace"]) == 5,
        message="the trace",
    )
    wait_until(
        lambda: client.get(f"/v1/events/{event['id']}", headers=DEMO).json()["content_purged_at"],
        message="the purge",
    )
    body = client.get(f"/v1/events/{event['id']}", headers=DEMO).json()

    assert [(t["status"], t["rule"], t["reason"]) for t in body["trace"]] == [
        ("queued", "aviso", None),
        ("sent", "aviso", "SM1"),
        ("suppressed", "aviso-email", "opted out of email"),
        ("scheduled", "recordatorio", None),
        ("cancelled", "recordatorio", "cancelled by license.renewed"),
    ]
    assert body["trace"][1]["channel"] == "sms"
    assert "data" not in body["event"]
    assert {k: body["event"][k] for k in ("id", "source", "type", "subject")} == {
        k: event[k] for k in ("id", "source", "type", "subject")
    }
    assert len(body["notifications"]) == 3


def test_deduplication_still_works_after_the_purge(client):
    event = make_event(id=f"tr-{uuid.uuid4().hex[:8]}")
    assert post(client, event).status_code == 202
    wait_until(
        lambda: client.get(f"/v1/events/{event['id']}", headers=DEMO).json()["content_purged_at"],
        message="the purge",
    )

    same = post(client, event)
    changed = post(client, {**event, "subject": "license/other"})

    assert same.status_code == 202 and same.json()["duplicates"] == 1
    assert changed.status_code == 409


def test_a_purged_payload_keeps_only_the_envelope():
    payload = {**make_event(), "time": "2026-11-29T10:00:00Z", "traceparent": "00-x"}

    assert envelope_only(payload) == {
        k: payload[k] for k in ("specversion", "id", "source", "type", "subject", "time")
    }


def test_contents_are_kept_seven_days_unless_configured(monkeypatch):
    monkeypatch.delenv("AVISA_CONTENT_RETENTION_DAYS", raising=False)
    assert Settings().content_retention_days == 7
    monkeypatch.setenv("AVISA_CONTENT_RETENTION_DAYS", "30")
    assert Settings().content_retention_days == 30
