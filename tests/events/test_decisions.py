"""Decision traces from decisions.v1 in GET /v1/events/{id}: kept after the purge, per agency."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from common.kafka import InvalidMessage, OutgoingMessage, Producer
from schemas.decisions import Decision, Reason, RuleDecision
from schemas.events import EventRef
from services.events.consumer import parse_decision
from tests.events.conftest import (
    ADMIN,
    DEMO,
    STRUCTURED,
    make_event,
    make_settings,
    running,
    wait_until,
)

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
        loop = app_client.app.state.decision_loop  # type: ignore[attr-defined]
        assert loop.assigned.wait(20), "decision consumer never assigned"
        app_client.settings = settings
        yield app_client


def decision_for(event: dict, *, at: datetime, rules: list[RuleDecision]) -> Decision:
    ref = EventRef(
        source=event["source"], id=event["id"], type=event["type"], subject=event["subject"]
    )
    return Decision(event=ref, at=at, rules=rules)


def publish(settings, decisions: list[Decision]) -> None:
    producer = Producer([settings.kafka_bootstrap], client_id="test-decisions")
    try:
        producer.publish(
            OutgoingMessage(
                topic=settings.topics.decisions,
                key=d.event.subject,
                value=d.model_dump_json().encode(),
            )
            for d in decisions
        )
    finally:
        producer.close()


def post(client, event, headers=DEMO):
    response = client.post(
        "/v1/events", content=json.dumps(event), headers={**headers, "Content-Type": STRUCTURED}
    )
    assert response.status_code == 202, response.text


MATCHED = RuleDecision(rule="aviso", version=2, role="trigger", matched=True, notifications=["n-1"])
MISSED = RuleDecision(
    rule="solo-aeat",
    version=1,
    role="trigger",
    matched=False,
    reason=Reason.SOURCE_MISMATCH,
    detail="the event source 'demo' is not 'aeat'",
)
CANCEL = RuleDecision(
    rule="recordatorio", version=4, role="cancel", matched=True, cancelled=["n-7"]
)


def test_the_decisions_are_shown_beside_the_trace_and_outlive_the_content(client):
    event = make_event(id=f"dc-{uuid.uuid4().hex[:8]}")
    post(client, event)
    fetch = lambda: client.get(f"/v1/events/{event['id']}", headers=DEMO).json()  # noqa: E731
    assert fetch()["decisions"] == [] and fetch()["decided_at"] is None

    publish(client.settings, [decision_for(event, at=T0, rules=[MATCHED, MISSED, CANCEL])])
    wait_until(lambda: len(fetch()["decisions"]) == 3, message="the decisions")
    wait_until(lambda: fetch()["content_purged_at"], message="the purge")
    body = fetch()

    assert "data" not in body["event"]
    assert body["decided_at"] == "2026-11-29T10:00:00Z"
    assert [RuleDecision.model_validate(d) for d in body["decisions"]] == [MATCHED, MISSED, CANCEL]
    assert body["decisions"][1]["reason"] == "source_mismatch"


def test_a_redelivered_decision_replaces_the_stored_one_and_an_older_does_not(client):
    event = make_event(id=f"dc-{uuid.uuid4().hex[:8]}")
    post(client, event)
    first = decision_for(event, at=T0, rules=[MISSED])
    again = decision_for(event, at=T0 + timedelta(minutes=1), rules=[MATCHED])
    publish(client.settings, [first, again, first])  # same key: in this order on one partition
    marker = make_event(id=f"dc-{uuid.uuid4().hex[:8]}", subject=event["subject"])
    post(client, marker)
    publish(client.settings, [decision_for(marker, at=T0, rules=[CANCEL])])
    wait_until(
        lambda: client.get(f"/v1/events/{marker['id']}", headers=DEMO).json()["decisions"],
        message="the marker's decision",
    )

    body = client.get(f"/v1/events/{event['id']}", headers=DEMO).json()
    assert [d["rule"] for d in body["decisions"]] == ["aviso"]
    assert body["decided_at"] == "2026-11-29T10:01:00Z"


def test_another_agency_cannot_read_an_events_decisions(client):
    other = f"otra-{uuid.uuid4().hex[:6]}"
    created = client.post("/v1/agencies", json={"id": other, "name": "Otra"}, headers=ADMIN)
    assert created.status_code == 201
    key = client.post(f"/v1/agencies/{other}/keys", headers=ADMIN).json()["key"]
    event = make_event(id=f"dc-{uuid.uuid4().hex[:8]}")
    post(client, event)
    publish(client.settings, [decision_for(event, at=T0, rules=[MATCHED])])
    wait_until(
        lambda: client.get(f"/v1/events/{event['id']}", headers=DEMO).json()["decisions"],
        message="the decision",
    )

    stranger = client.get(f"/v1/events/{event['id']}", headers={"Authorization": f"Bearer {key}"})
    admin = client.get(f"/v1/events/{event['id']}?source=demo", headers=ADMIN)

    assert stranger.status_code == 404
    assert "aviso" not in stranger.text
    assert admin.json()["decisions"][0]["rule"] == "aviso"


@pytest.mark.parametrize("value", [b"", b"{not json", b'{"event": {"source": "demo"}}'])
def test_an_invalid_decision_message_is_dead_lettered(value):
    with pytest.raises(InvalidMessage):
        parse_decision(SimpleNamespace(value=value))  # type: ignore[arg-type]
