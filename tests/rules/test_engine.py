"""The rule engine against a real broker: events.v1 in, notifications.v1 / status.v1 out."""

import json
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition
from starlette.testclient import TestClient

from common.auth import hash_key, new_key
from common.kafka import OutgoingMessage, Producer, ensure_topics
from schemas.documents import load_documents
from schemas.keys import KeyRecord
from schemas.notifications import NotificationRequest, StatusChange, notification_id
from services.rules.config import Settings
from services.rules.main import create_app, migrate
from tests.rules.factories import ADMIN, event_body

EXAMPLES = Path(__file__).parents[2] / "examples"


class Service:
    def __init__(self, client: TestClient, settings: Settings, producer: Producer) -> None:
        self.client = client
        self.settings = settings
        self.producer = producer

    def publish(self, body, *, raw: bytes | None = None) -> None:
        value = raw if raw is not None else json.dumps(body).encode()
        key = body.get("subject") if body else None
        self.producer.publish(
            [
                OutgoingMessage(
                    topic=self.settings.topics.events,
                    key=key,
                    value=value,
                    headers=[("content-type", b"application/cloudevents+json")],
                )
            ]
        )

    def read(self, topic: str, *, until, timeout_s: float = 15.0):
        """Every record of `topic` so far, polled until `until(records)` holds."""
        consumer = KafkaConsumer(
            bootstrap_servers=[self.settings.kafka_bootstrap],
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        partitions = [TopicPartition(topic, p) for p in range(self.settings.topic_partitions)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records = []
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                for batch in consumer.poll(timeout_ms=200).values():
                    records += batch
                if until(records):
                    return records
        finally:
            consumer.close()
        raise AssertionError(f"condition not met on {topic}; got {len(records)} records")

    def requests_for(self, event_id: str, count: int = 1, timeout_s: float = 15.0):
        def mine(records):
            return [
                NotificationRequest.model_validate_json(r.value)
                for r in records
                if json.loads(r.value)["event"]["id"] == event_id
            ]

        records = self.read(
            self.settings.topics.notifications,
            until=lambda rs: len(mine(rs)) >= count,
            timeout_s=timeout_s,
        )
        keyed = [r for r in records if json.loads(r.value)["event"]["id"] == event_id]
        return mine(records), [r.key.decode() for r in keyed]


@contextmanager
def running_service(broker, database_dir: Path, **extra):
    """A rules service with the examples' rules and templates, its engine consuming."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    settings = Settings(
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=prefix,
        topic_partitions=2,
        env="development",
        admin_key=None,
        database_url=f"sqlite:///{database_dir}/avisa.db",
        kafka_session_timeout_ms=6000,
        consumer_group_prefix=prefix,
        default_locale="es",
        default_timezone="Europe/Madrid",
        **extra,
    )
    ensure_topics(settings.bootstrap_servers, settings.topics.all(), partitions=2)
    migrate(settings)
    producer = Producer(settings.bootstrap_servers, client_id="test")
    app = create_app(settings)
    with TestClient(app) as client:
        for kind in ("templates", "rules"):
            for path in sorted((EXAMPLES / kind).glob("*.yaml")):
                for document in load_documents(path.read_text()):
                    response = client.put(
                        f"/v1/{kind}/{document['id']}", json=document, headers=ADMIN
                    )
                    assert response.status_code == 200, response.text
        assert app.state.consumer.assigned.wait(30)
        yield Service(client, settings, producer)
    producer.close()


@pytest.fixture(scope="module")
def service(broker, tmp_path_factory):
    with running_service(broker, tmp_path_factory.mktemp("rules")) as running:
        yield running


def test_the_contracts_example_event_becomes_one_notification_request(service):
    service.publish(event_body())
    [request], keys = service.requests_for("dgt-2026-000123")
    assert keys == ["ES-12345678Z"]
    assert request.id == notification_id(
        rule_id="licencia-aviso",
        rule_version=1,
        source="dgt",
        event_id="dgt-2026-000123",
        step="now",
    )
    assert request.rule.id == "licencia-aviso"
    assert [str(c) for c in request.channels] == ["sms", "email"]
    assert request.delivery == "all"
    assert request.locale == "es"
    assert request.content.sms is not None
    assert request.content.sms.body == (
        "Hola Ana, tu permiso de conducir caduca el 15 de enero de 2027. "
        "Renuévalo en https://sede.dgt.es"
    )
    assert request.content.email is not None
    assert request.content.email.subject == "Tu permiso de conducir caduca el 15 de enero de 2027"
    assert '<a href="https://sede.dgt.es">' in request.content.email.html
    assert request.not_after == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert request.step == "now"


def test_the_same_event_twice_gives_the_same_notification_id(service):
    body = event_body(id="twice-1", source="demo", citizen={"locale": "en-GB"})
    service.publish(body)
    service.requests_for("twice-1")
    service.publish(body)  # a redelivery, after the first one was handled
    requests, _ = service.requests_for("twice-1", count=2)
    assert len(requests) == 2
    assert len({r.id for r in requests}) == 1
    assert requests[0].locale == "en"
    assert requests[0].content.sms is not None
    assert "January 15, 2027" in requests[0].content.sms.body


def test_invalid_events_are_dead_lettered_and_do_not_block(service):
    service.publish({"subject": "bad/1"}, raw=b"{not json")
    service.publish(
        {"subject": "bad/2"},
        raw=json.dumps(
            {
                "specversion": "1.0",
                "id": "x",
                "source": "dgt",
                "type": "license.expiring",
                "subject": "bad/2",
                "data": {"expires_on": "2027-01-15"},
            }
        ).encode(),
    )
    service.publish(event_body(id="after-bad"))
    records = service.read(service.settings.topics.deadletter, until=lambda rs: len(rs) >= 2)
    errors = {r.key.decode(): dict(r.headers)["avisa-dlq-error"].decode() for r in records}
    assert "not JSON" in errors["bad/1"]
    assert "data.citizen" in errors["bad/2"]
    assert dict(records[0].headers)["avisa-dlq-topic"] == service.settings.topics.events.encode()
    service.requests_for("after-bad")


def test_a_template_that_fails_for_an_event_is_a_failed_status(service):
    client = service.client
    template = {"locales": {"es": {"sms": "Debes {{ data.amount | numero(2) }} euros"}}}
    assert client.put("/v1/templates/deuda", json=template, headers=ADMIN).status_code == 200
    rule = {"on": "tax.*", "channels": ["sms"], "template": "deuda"}
    assert client.put("/v1/rules/deuda", json=rule, headers=ADMIN).status_code == 200
    service.publish(event_body(id="tax-1", type="tax.due"))  # no amount: cannot render
    service.publish(event_body(id="tax-2", type="tax.due", amount=1234.5))

    def failure(records):
        return [
            StatusChange.model_validate_json(r.value)
            for r in records
            if json.loads(r.value)["event"]["id"] == "tax-1"
        ]

    records = service.read(service.settings.topics.status, until=failure)
    [status] = failure(records)
    assert status.status == "failed"
    assert status.rule == "deuda"
    assert "amount" in (status.detail or "")
    assert status.notification_id == notification_id(
        rule_id="deuda", rule_version=1, source="dgt", event_id="tax-1", step="now"
    )
    [request], _ = service.requests_for("tax-2")
    assert request.content.sms is not None
    assert request.content.sms.body == "Debes 1.234,50 euros"
    assert request.content.email is None


def test_a_change_made_through_another_replica_reaches_the_engine(service):
    other = service.settings.model_copy(update={"rules_consumer_enabled": False})
    with TestClient(create_app(other)) as replica:
        template = {"locales": {"es": {"sms": "Cita el {{ data.on | fecha }}"}}}
        assert replica.put("/v1/templates/cita", json=template, headers=ADMIN).status_code == 200
        rule = {"on": "appointment.*", "channels": ["sms"], "template": "cita"}
        assert replica.put("/v1/rules/cita", json=rule, headers=ADMIN).status_code == 200
        changed_at = time.monotonic()
    # The engine's own API did not see this change; its periodic refresh must pick it up.
    deadline = changed_at + 5.0
    attempt = 0
    while True:
        attempt += 1
        service.publish(event_body(id=f"cita-{attempt}", type="appointment.set", on="2027-03-01"))
        try:
            [request], _ = service.requests_for(f"cita-{attempt}", timeout_s=1.0)
            break
        except AssertionError:
            assert time.monotonic() < deadline, "the rule did not reach the engine in 5 s"
    assert request.content.sms is not None
    assert request.content.sms.body == "Cita el 1 de marzo de 2027"


def failed_status(service, event_id: str, timeout_s: float = 15.0) -> StatusChange:
    def mine(records):
        return [
            StatusChange.model_validate_json(r.value)
            for r in records
            if json.loads(r.value)["event"]["id"] == event_id
            and json.loads(r.value)["status"] == "failed"
        ]

    records = service.read(service.settings.topics.status, until=mine, timeout_s=timeout_s)
    # The same change may be published twice (a redelivery); timelines record it once.
    [status] = {(s.notification_id, s.at): s for s in mine(records)}.values()
    return status


def others_are_served_promptly(service, prefix: str) -> None:
    """Ten other agencies' events, each answered by the engine about as fast as normal."""
    started = time.monotonic()
    ids = [f"{prefix}-{n}" for n in range(10)]
    for n, event_id in enumerate(ids):
        service.publish(event_body(id=event_id, source=f"agency-{n}", subject=f"case/{event_id}"))
    for event_id in ids:
        service.requests_for(event_id, timeout_s=max(0.5, started + 3.0 - time.monotonic()))


def test_a_far_future_time_fails_that_rule_and_never_stops_other_agencies(service):
    service.publish(event_body(id="far-future", time="9999-12-31T23:59:59Z"))
    others_are_served_promptly(service, "after-far-future")
    status = failed_status(service, "far-future")
    assert status.rule == "licencia-aviso"
    assert "expires_after P2D" in (status.detail or "")
    assert "outside the calendar" in (status.detail or "")
    decisions = service.read(
        service.settings.topics.decisions,
        until=lambda rs: any(json.loads(r.value)["event"]["id"] == "far-future" for r in rs),
    )
    [decision] = [
        d for d in map(json.loads, (r.value for r in decisions)) if d["event"]["id"] == "far-future"
    ]
    [aviso] = [d for d in decision["rules"] if d["rule"] == "licencia-aviso"]
    assert aviso["reason"] == "failed"


def test_a_notification_too_big_for_the_broker_is_failed_and_dead_lettered(service):
    big = event_body(id="too-big", subject="license/too-big", citizen={"name": "x" * 300_000})
    service.publish(big)
    others_are_served_promptly(service, "after-too-big")
    status = failed_status(service, "too-big")
    assert status.rule == "licencia-aviso"
    assert "bytes" in (status.detail or "") and "AVISA_KAFKA_MAX_MESSAGE_BYTES" in (
        status.detail or ""
    )
    records = service.read(
        service.settings.topics.deadletter,
        until=lambda rs: any(r.key == b"license/too-big" for r in rs),
    )
    [dead] = [r for r in records if r.key == b"license/too-big"]
    assert json.loads(dead.value)["id"] == "too-big"
    headers = dict(dead.headers)
    assert headers["avisa-dlq-topic"] == service.settings.topics.events.encode()
    assert b"licencia-aviso" in headers["avisa-dlq-error"]
    assert b"bytes" in headers["avisa-dlq-error"]


def test_an_agency_key_published_on_keys_v1_is_forbidden_on_the_rules_api(service):
    key = new_key()
    record = KeyRecord(
        agency_id="dgt", prefix=key[:8], key_hash=hash_key(key), at=datetime.now(UTC)
    )
    service.producer.publish(
        [
            OutgoingMessage(
                topic=service.settings.topics.keys,
                key=record.key_hash,
                value=record.model_dump_json().encode(),
            )
        ]
    )
    headers = {"Authorization": f"Bearer {key}"}
    deadline = time.monotonic() + 15.0
    while (status := service.client.get("/v1/rules", headers=headers).status_code) == 401:
        assert time.monotonic() < deadline, "the rules service never learnt the agency key"
        time.sleep(0.05)
    assert status == 403


def test_a_request_the_broker_refuses_anyway_is_failed_and_its_event_dead_lettered(
    broker, tmp_path
):
    # A limit above the client's own (1 MiB): the request reaches the producer, which refuses it.
    with running_service(broker, tmp_path, kafka_max_message_bytes=5_000_000) as service:
        big = event_body(id="refused", subject="license/refused", citizen={"name": "x" * 300_000})
        service.publish(big)
        started = time.monotonic()
        service.publish(event_body(id="after-refused", source="agency-2", subject="case/2"))
        service.requests_for("after-refused", timeout_s=5.0)
        assert time.monotonic() - started < 5.0
        status = failed_status(service, "refused")
        records = service.read(
            service.settings.topics.deadletter,
            until=lambda rs: any(r.key == b"license/refused" for r in rs),
        )
    assert status.rule == "licencia-aviso"
    assert "MessageSizeTooLarge" in (status.detail or "")
    [dead] = [r for r in records if r.key == b"license/refused"]
    assert json.loads(dead.value)["id"] == "refused"
    assert dict(dead.headers)["avisa-dlq-error"].startswith(b"MessageRejected: ")
