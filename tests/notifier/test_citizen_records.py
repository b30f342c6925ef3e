"""citizens.v1: the notifier publishes every citizen's zone and locale at start, then each
change once (never an address), keyed by citizen id on a compacted topic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from common.db import make_engine, make_sessions
from common.kafka import Producer
from common.keyfeed import ensure_compacted_topic
from schemas.citizens import CitizenRecord
from services.notifier import directory
from services.notifier.citizen_records import CitizenPublisher
from services.notifier.main import migrate
from services.notifier.preferences import PreferencesDoc
from tests.notifier.kafkatools import read_until
from tests.notifier.test_delivery import make_settings

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def put(sessions, citizen_id: str, at: datetime, **doc) -> None:
    with sessions.begin() as session:
        directory.put_preferences(
            session=session, citizen_id=citizen_id, doc=PreferencesDoc(**doc), now=at
        )


def records(settings, done):
    found = read_until(
        settings.kafka_bootstrap,
        settings.topics.citizens,
        lambda rs: done([CitizenRecord.model_validate_json(r.value) for r in rs]),
    )
    return found, [CitizenRecord.model_validate_json(r.value) for r in found]


def compacted(settings) -> bool:
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, settings.topics.citizens)],
            config_filter="all",
        )
    finally:
        admin.close()
    [topics] = described.values()
    return topics[settings.topics.citizens]["cleanup.policy"]["value"] == "compact"


def test_every_citizen_at_start_then_each_change_once_without_addresses(
    broker, topic_prefix, database_url, tmp_path
):
    settings = make_settings(broker, topic_prefix, database_url, tmp_path)
    migrate(settings)
    engine = make_engine(settings.database_url)
    sessions = make_sessions(engine)
    producer = Producer(settings.bootstrap_servers, client_id="test")
    put(sessions, "ES-1", T0, timezone="America/New_York", locale="en", phone="+34600111222")
    put(sessions, "ES-2", T0, email="ana@example.es")  # no zone or locale: published all the same
    publisher = CitizenPublisher(
        sessions,
        producer,
        settings.topics.citizens,
        bootstrap_servers=settings.bootstrap_servers,
        batch=1,
    )
    try:
        ensure_compacted_topic(settings.bootstrap_servers, settings.topics.citizens)
        assert publisher.publish_changes() == 2
        assert publisher.publish_changes() == 0  # nothing changed
        put(sessions, "ES-2", T0 + timedelta(minutes=1), timezone="Atlantic/Canary")
        assert publisher.publish_changes() == 1
        raw, found = records(settings, lambda rs: len(rs) >= 3)
    finally:
        producer.close()
        engine.dispose()

    assert [(r.citizen_id, r.timezone, r.locale) for r in found] == [
        ("ES-1", "America/New_York", "en"),
        ("ES-2", None, None),
        ("ES-2", "Atlantic/Canary", None),
    ]
    assert [r.key for r in raw] == [b"ES-1", b"ES-2", b"ES-2"]
    assert found[2].updated_at == T0 + timedelta(minutes=1)
    assert not any(b"+346" in r.value or b"@" in r.value for r in raw)
    assert compacted(settings)
