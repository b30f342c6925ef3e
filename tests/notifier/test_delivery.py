"""The notifier end to end in one process: notifications.v1 in, providers called through the
real SDKs, status.v1 out; on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from starlette.testclient import TestClient

from common.kafka import ensure_topics
from schemas.notifications import StatusChange
from services.notifier import tokens
from services.notifier.config import Settings
from services.notifier.main import create_app, migrate
from tests.notifier.factories import email_subject, make_request, sms_body
from tests.notifier.kafkatools import eventually, publish, read_until

ADMIN = {"Authorization": "Bearer dev-admin-key"}
TWILIO = {
    "twilio_account_sid": "AC" + "0" * 32,
    "twilio_auth_token": "secret",
    "twilio_from_number": "+15005550006",
    "sendgrid_api_key": "SG.key",
    "sendgrid_from_email": "avisa@example.es",
}
NO_PROVIDERS = dict.fromkeys(TWILIO)


def make_settings(broker, topic_prefix, database_url, tmp_path, **overrides) -> Settings:
    options = {
        "kafka_bootstrap": broker.bootstrap,
        "topic_prefix": topic_prefix,
        "database_url": database_url,
        "env": "development",
        "admin_key": None,
        "topic_partitions": 2,
        "kafka_session_timeout_ms": 2000,
        "kafka_heartbeat_interval_ms": 500,
        "outbox_dir": tmp_path / "outbox",
        "public_url": "http://127.0.0.1:8003",
        "delivery_backoff_s": 0.05,
        "delivery_max_delay_s": 0.5,
        "quiet_hours_default": "",
        "scheduler_interval_s": 0.1,
        "twilio_auth_token": None,
        "sendgrid_webhook_public_key": None,
    } | overrides
    return Settings(**options)


@contextlib.contextmanager
def running(settings: Settings) -> Iterator[TestClient]:
    """The notifier app with its consumer joined to the group."""
    migrate(settings)
    ensure_topics(
        settings.bootstrap_servers, settings.topics.all(), partitions=settings.topic_partitions
    )
    with TestClient(create_app(settings)) as client:
        eventually(client.app.state.consumer.assigned.is_set, timeout_s=30)  # type: ignore[attr-defined]
        yield client


@pytest.fixture
def notifier(broker, topic_prefix, database_url, providers, tmp_path):
    settings = make_settings(
        broker,
        topic_prefix,
        database_url,
        tmp_path,
        twilio_base_url=providers.url,
        sendgrid_base_url=providers.url,
        **TWILIO,
    )
    with running(settings) as client:
        yield client, settings


def send(settings: Settings, *requests) -> None:
    for request in requests:
        publish(
            settings.kafka_bootstrap,
            settings.topics.notifications,
            request.model_dump_json().encode(),
            key=request.citizen.id,
        )


def status_changes(settings: Settings, until) -> list[StatusChange]:
    records = read_until(
        settings.kafka_bootstrap,
        settings.topics.status,
        lambda rs: until([StatusChange.model_validate_json(r.value) for r in rs]),
    )
    return [StatusChange.model_validate_json(r.value) for r in records]


def statuses(changes, notification_id):
    return [
        (c.status.value, c.channel.value if c.channel else None)
        for c in changes
        if c.notification_id == notification_id
    ]


def final(changes, notification_id):
    return any(
        c.notification_id == notification_id and c.status.value in ("sent", "failed", "suppressed")
        for c in changes
    )


def test_a_request_is_sent_by_sms_through_twilio(notifier, providers):
    _client, settings = notifier
    request = make_request(channels=("sms", "email"), delivery="first")
    send(settings, request)
    changes = status_changes(settings, lambda cs: final(cs, request.id))
    assert statuses(changes, request.id) == [("queued", None), ("sent", "sms")]
    [sms] = providers.twilio_requests()
    assert (sms["form"]["To"], sms["form"]["From"], sms["form"]["Body"]) == (
        "+34600111222",
        "+15005550006",
        sms_body(request),
    )
    assert sms["form"]["StatusCallback"].endswith(f"/v1/providers/twilio/status?n={request.id}")
    assert providers.sendgrid_requests() == []
    sent = next(c for c in changes if c.status.value == "sent")
    assert sent.provider_reference == sms["sid"]
    assert sent.event == request.event and sent.rule == request.rule.id


def test_an_attempt_is_recorded_sending_before_the_call_then_sent_with_its_reference(
    notifier, providers
):
    client, settings = notifier
    providers.script(twilio=[{"delay_s": 3.0}])  # the provider holds the call
    request = make_request(channels=("sms",))
    send(settings, request)

    def attempts():
        found = client.get(f"/v1/notifications/{request.id}", headers=ADMIN)
        return found.json()["attempts"] if found.status_code == 200 else []

    eventually(lambda: [a["status"] for a in attempts()] == ["sending"])
    status_changes(settings, lambda cs: final(cs, request.id))
    [sms] = providers.twilio_requests()
    [attempt] = attempts()
    assert (attempt["status"], attempt["provider_reference"]) == ("sent", sms["sid"])


def test_delivery_all_sends_email_through_sendgrid_too(notifier, providers):
    client, settings = notifier
    request = make_request(delivery="all")
    send(settings, request)
    changes = status_changes(
        settings, lambda cs: len([c for c in cs if c.status.value == "sent"]) == 2
    )
    assert statuses(changes, request.id) == [("queued", None), ("sent", "sms"), ("sent", "email")]
    [mail] = providers.sendgrid_requests()
    body = mail["body"]
    assert body["personalizations"][0]["to"] == [{"email": "ana@example.es"}]
    assert body["personalizations"][0]["custom_args"] == {"notification_id": request.id}
    assert body["from"]["email"] == "avisa@example.es"
    assert body["subject"] == email_subject(request)
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    link = body["headers"]["List-Unsubscribe"]
    assert link.startswith("<http://127.0.0.1:8003/unsubscribe/") and link.endswith(">")
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = link[1:-1].rsplit("/", 1)[1]
    claims = tokens.verify(
        settings.token_keys(),
        token,
        purpose=tokens.UNSUBSCRIBE,
        max_age=timedelta(days=1),
        now=datetime.now(UTC),
    )
    assert (claims.subject, claims.detail) == (request.citizen.id, "email")
    assert client.get(f"/unsubscribe/{token}").status_code == 200
    view = client.get(f"/v1/notifications/{request.id}", headers=ADMIN).json()
    assert view["status"] == "sent"
    assert [(a["channel"], a["provider"], a["status"]) for a in view["attempts"]] == [
        ("sms", "twilio", "sent"),
        ("email", "sendgrid", "sent"),
    ]


def test_a_redelivered_request_is_sent_once(notifier, providers):
    client, settings = notifier
    request = make_request(channels=("sms",))
    later = make_request(channels=("sms",))
    send(settings, request, request)
    send(settings, later)
    changes = status_changes(settings, lambda cs: final(cs, later.id))
    assert statuses(changes, request.id) == [("queued", None), ("sent", "sms")]
    bodies = [r["form"]["Body"] for r in providers.twilio_requests()]
    assert len(bodies) == 2  # the request once, and the later one
    view = client.get(f"/v1/notifications/{request.id}", headers=ADMIN).json()
    assert len(view["attempts"]) == 1


def test_a_permanent_sms_error_falls_back_to_email(notifier, providers):
    client, settings = notifier
    providers.script(twilio=[{"status": 400, "code": 21211}])
    request = make_request(channels=("sms", "email"), delivery="first")
    send(settings, request)
    changes = status_changes(settings, lambda cs: final(cs, request.id))
    assert statuses(changes, request.id) == [("queued", None), ("sent", "email")]
    assert len(providers.sendgrid_requests()) == 1
    attempts = client.get(f"/v1/notifications/{request.id}", headers=ADMIN).json()["attempts"]
    assert [(a["channel"], a["status"], a["error_code"]) for a in attempts] == [
        ("sms", "failed", "21211"),
        ("email", "sent", None),
    ]


def test_a_throttled_sms_is_retried_and_sent(notifier, providers):
    client, settings = notifier
    providers.script(twilio=[{"status": 429, "retry_after": 0}, {"status": 503}])
    request = make_request(channels=("sms",))
    send(settings, request)
    changes = status_changes(settings, lambda cs: final(cs, request.id))
    assert statuses(changes, request.id) == [("queued", None), ("sent", "sms")]
    attempts = client.get(f"/v1/notifications/{request.id}", headers=ADMIN).json()["attempts"]
    assert [a["status"] for a in attempts] == ["failed", "failed", "sent"]


def test_an_sms_that_exhausts_its_retries_falls_back_to_email(notifier, providers):
    client, settings = notifier
    providers.script(twilio=[{"status": 503}] * (settings.delivery_retries + 1))
    request = make_request(channels=("sms", "email"), delivery="first")
    send(settings, request)
    changes = status_changes(settings, lambda cs: final(cs, request.id))
    assert statuses(changes, request.id) == [("queued", None), ("sent", "email")]
    attempts = client.get(f"/v1/notifications/{request.id}", headers=ADMIN).json()["attempts"]
    assert [(a["channel"], a["status"]) for a in attempts] == [
        ("sms", "failed"),
    ] * (settings.delivery_retries + 1) + [("email", "sent")]
    assert providers.twilio_requests() == []


def test_when_every_channel_fails_the_notification_fails_and_is_dead_lettered(notifier, providers):
    _client, settings = notifier
    providers.script(
        twilio=[{"status": 400, "code": 21610}], sendgrid=[{"status": 400, "message": "invalid"}]
    )
    request = make_request()
    send(settings, request)
    changes = status_changes(settings, lambda cs: final(cs, request.id))
    failed = [c for c in changes if c.status.value == "failed"]
    assert [c.notification_id for c in failed] == [request.id]
    assert "sms" in (failed[0].detail or "") and "email" in (failed[0].detail or "")
    dead = read_until(settings.kafka_bootstrap, settings.topics.deadletter, bool)
    assert json.loads(dead[0].value)["id"] == request.id


def test_a_citizen_without_contact_is_suppressed(notifier, providers):
    _client, settings = notifier
    request = make_request(phone=None, email=None)
    send(settings, request)
    changes = status_changes(settings, lambda cs: final(cs, request.id))
    assert [(c.status.value, c.detail) for c in changes] == [
        ("queued", None),
        ("suppressed", "no contact"),
    ]
    assert providers.twilio_requests() == [] and providers.sendgrid_requests() == []


def test_an_invalid_message_is_dead_lettered_and_the_next_one_delivered(notifier, providers):
    _client, settings = notifier
    request = make_request(channels=("sms",))
    publish(
        settings.kafka_bootstrap,
        settings.topics.notifications,
        b"{not json",
        key=request.citizen.id,
    )
    send(settings, request)
    changes = status_changes(settings, lambda cs: final(cs, request.id))
    assert statuses(changes, request.id)[-1] == ("sent", "sms")
    [dead] = read_until(settings.kafka_bootstrap, settings.topics.deadletter, bool)
    assert dead.value == b"{not json"
    headers = dict(dead.headers)
    assert headers["avisa-dlq-topic"] == settings.topics.notifications.encode()
    assert b"invalid notification request" in headers["avisa-dlq-error"]


def test_the_service_is_ready_and_serves_metrics(notifier):
    client, _ = notifier
    assert client.get("/healthz").json() == {"status": "ok"}
    eventually(lambda: client.get("/readyz").status_code == 200)  # agency keys loaded
    ready = client.get("/readyz")
    assert ready.json()["checks"] == {
        "database": "ok",
        "broker": "ok",
        "agency_keys": "ok",
    }
    assert ready.json()["workers"] == {
        "notifier-consumer": "ok",
        "notifier-scheduler": "ok",
        "notifier-keys": "ok",
        "notifier-parked-reports": "ok",
        "notifier-citizens": "ok",
        "notifier-purge": "ok",
        "notifier-journal": "ok",
    }
    assert client.get("/metrics").status_code == 200


def test_readyz_names_a_background_worker_that_stopped(notifier):
    client, _ = notifier
    client.app.state.scheduler.stop()  # type: ignore[attr-defined]  # its loop ends, unasked
    eventually(lambda: client.get("/readyz").status_code == 503)
    body = client.get("/readyz").json()
    assert body["status"] == "unavailable"
    assert body["workers"]["notifier-scheduler"] == "down"
    assert body["workers"]["notifier-consumer"] == "ok"


def test_an_unknown_notification_is_a_problem_404(notifier):
    client, _ = notifier
    response = client.get("/v1/notifications/nope", headers=ADMIN)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/notifications/nope").status_code == 401


def test_without_credentials_the_outbox_gets_sms_and_email(
    broker, topic_prefix, database_url, providers, tmp_path
):
    settings = make_settings(broker, topic_prefix, database_url, tmp_path, **NO_PROVIDERS)
    request = make_request(delivery="all")
    with running(settings):
        send(settings, request)
        status_changes(settings, lambda cs: final(cs, request.id))
    [sms] = [json.loads(x) for x in (tmp_path / "outbox" / "sms.jsonl").read_text().splitlines()]
    [mail] = [json.loads(x) for x in (tmp_path / "outbox" / "email.jsonl").read_text().splitlines()]
    assert (sms["notification_id"], sms["to"], sms["body"]) == (
        request.id,
        "+34600111222",
        sms_body(request),
    )
    assert (mail["notification_id"], mail["to"], mail["subject"]) == (
        request.id,
        "ana@example.es",
        email_subject(request),
    )
    assert "List-Unsubscribe" in mail["headers"]
    assert providers.twilio_requests() == [] and providers.sendgrid_requests() == []
