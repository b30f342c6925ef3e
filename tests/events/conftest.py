"""Fixtures of the events service tests: settings, a running app, and topic readers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import TopicPartition

from common.kafka import ensure_topics
from common.settings import DEV_AGENCY_KEY
from services.events.config import Settings
from services.events.main import create_app, migrate
from tests.conftest import create_postgres_database, drop_postgres_database

ADMIN_KEY = "test-admin-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
DEMO = {"Authorization": f"Bearer {DEV_AGENCY_KEY}"}
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"


def make_settings(bootstrap: str, prefix: str, database_url: str, **extra: Any) -> Settings:
    """Everything the tests depend on, explicit (pydantic-settings would read the env too)."""
    values: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "topic_prefix": prefix,
        "database_url": database_url,
        "env": "development",
        "admin_key": ADMIN_KEY,
        "topic_partitions": 3,
        "kafka_session_timeout_ms": 6000,
        "kafka_heartbeat_interval_ms": 1000,
        "kafka_ack_timeout_s": 5.0,
        "consumer_group_prefix": prefix,
        "max_body_bytes": 1024 * 1024,
        "max_batch": 1000,
        "key_cache_ttl_s": 5.0,
        "duplicate_wait_s": 5.0,
        "stale_pending_s": 60.0,
        "retry_after_s": 5,
        "callback_allow_private": True,  # the receivers listen on loopback
    }
    return Settings(**{**values, **extra})


@contextmanager
def running(settings: Settings) -> Iterator[TestClient]:
    """The app with its lifespan (producer, consumer) running, after migrations and topics."""
    migrate(settings)
    ensure_topics(settings.bootstrap_servers, settings.topics.all(), partitions=3)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def settings(broker, topic_prefix: str, database_url: str) -> Settings:
    """Settings of a test of its own: own topics, own database (SQLite and PostgreSQL)."""
    return make_settings(broker.bootstrap, topic_prefix, database_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with running(settings) as app_client:
        yield app_client


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def module_database_url(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[str]:
    """Like `database_url`, but one database per test module (apps are slow to stop)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('events') / 'avisa.db'}"
        return
    url = create_postgres_database()
    yield url
    drop_postgres_database(url)


@pytest.fixture(scope="module")
def shared_settings(broker, module_database_url: str) -> Settings:
    """Settings shared by one module's tests: they isolate by event ids and subjects."""
    return make_settings(broker.bootstrap, f"t{uuid.uuid4().hex[:10]}.", module_database_url)


@pytest.fixture(scope="module")
def shared_client(shared_settings: Settings) -> Iterator[TestClient]:
    with running(shared_settings) as app_client:
        yield app_client


def make_event(**overrides: Any) -> dict[str, Any]:
    """A valid event from the demo agency; keyword arguments replace top-level attributes."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": f"ev-{uuid.uuid4().hex[:12]}",
        "source": "demo",
        "type": "license.expiring",
        "subject": f"license/{uuid.uuid4().hex[:8]}",
        "data": {
            "citizen": {
                "id": "ES-12345678Z",
                "name": "Ana",
                "phone": "+34600111222",
                "email": "ana@example.es",
                "locale": "es",
                "timezone": "Europe/Madrid",
            },
            "expires_on": "2027-01-15",
        },
    }
    event.update(overrides)
    return event


def read_topic(bootstrap: str, topic: str) -> list[ConsumerRecord]:
    """Every record on the topic right now (from the beginning to the current end offsets)."""
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + 10
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            assert time.monotonic() < deadline, "could not read the topic in time"
            for batch in consumer.poll(timeout_ms=200).values():
                records += batch
        return records
    finally:
        consumer.close()


def wait_until(
    condition: Callable[[], bool], *, timeout_s: float = 20.0, message: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {message}"
        time.sleep(0.05)
