"""With the broker gone, POST /v1/events answers 503 with Retry-After and keeps nothing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, text

from common.kafka import ensure_topics
from tests.conftest import Broker
from tests.events.conftest import DEMO, STRUCTURED, make_event, make_settings, read_topic, running


@pytest.fixture
def own_broker():
    """A broker of this test's own: stopping it must not disturb the session broker."""
    broker = Broker()
    broker.start()
    yield broker
    broker.stop()


def stored_ids(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text("SELECT id FROM events_events")).scalars())
    finally:
        engine.dispose()


def post(client, event):
    return client.post(
        "/v1/events", content=json.dumps(event), headers={**DEMO, "Content-Type": STRUCTURED}
    )


def test_a_stopped_broker_gives_503_and_leaves_no_row(own_broker, topic_prefix, database_url):
    settings = make_settings(
        own_broker.bootstrap, topic_prefix, database_url, kafka_ack_timeout_s=2.0, retry_after_s=7
    )
    before, during = make_event(), make_event()

    with running(settings) as client:
        ok = post(client, before)
        own_broker.stop()
        refused = post(client, during)
        rows_while_down = stored_ids(database_url)
        own_broker.start()  # a fresh broker: memory storage lost everything
        ensure_topics(settings.bootstrap_servers, settings.topics.all(), partitions=3)
        retried = post(client, during)

    assert ok.status_code == 202
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "7"
    assert refused.headers["content-type"] == "application/problem+json"
    assert rows_while_down == [before["id"]]
    assert retried.status_code == 202, retried.text
    assert retried.json()["accepted"] == 1
    on_topic = [
        json.loads(r.value)["id"] for r in read_topic(own_broker.bootstrap, settings.topics.events)
    ]
    assert on_topic == [during["id"]]
