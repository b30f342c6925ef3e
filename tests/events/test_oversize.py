"""An event too large for the broker is refused with 413 at the door, alone: the requests it
would have shared a claim and a produce with are accepted as if it had never come."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from common import db
from common.kafka import MessageRejected, OutgoingMessage, Producer
from common.problems import Problem
from schemas.events import CloudEvent
from services.events.intake.batcher import Ingestor
from services.events.main import migrate
from tests.events.conftest import ADMIN, DEMO, STRUCTURED, make_event, make_settings


@pytest.fixture
def client(shared_client):
    return shared_client


def other_agency(client) -> dict[str, str]:
    agency = f"ag{uuid.uuid4().hex[:8]}"
    assert (
        client.post("/v1/agencies", json={"id": agency, "name": "Other"}, headers=ADMIN).status_code
        == 201
    )
    key = client.post(f"/v1/agencies/{agency}/keys", headers=ADMIN).json()["key"]
    return {"Authorization": f"Bearer {key}", "agency": agency}


def post(client, event, headers):
    auth = {"Authorization": headers["Authorization"], "Content-Type": STRUCTURED}
    return client.post("/v1/events", content=json.dumps(event, ensure_ascii=False), headers=auth)


def test_a_non_ascii_body_under_the_body_limit_but_over_the_record_limit_gets_413(client):
    event = make_event()
    event["data"]["note"] = "ñ" * 400_000  # 800 KB of UTF-8, 2.4 MB as escaped JSON

    response = post(client, event, DEMO)

    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "broker" in response.json()["detail"]


def test_an_ascii_body_of_exactly_the_body_limit_gets_413_not_503(client):
    event = make_event()
    event["data"]["note"] = ""
    filler = 1024 * 1024 - len(json.dumps(event).encode())
    event["data"]["note"] = "a" * filler
    assert len(json.dumps(event).encode()) == 1024 * 1024

    assert post(client, event, DEMO).status_code == 413


def test_an_oversize_event_never_fails_another_agencys_concurrent_events(client):
    other = other_agency(client)
    big = make_event()
    big["data"]["note"] = "ñ" * 400_000
    small = [make_event(source=other["agency"]) for _ in range(36)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(post, client, big, DEMO) for _ in range(3)]
        futures += [pool.submit(post, client, event, other) for event in small]
        answers = [future.result().status_code for future in futures]

    assert answers[:3] == [413, 413, 413]
    assert answers[3:] == [202] * 36


class RefusingProducer:
    """Refuses, like `Producer.publish`, every record larger than `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.published: list[OutgoingMessage] = []

    def publish(self, messages):
        oversize = [m for m in messages if len(m.value) > self.limit]
        self.published += [m for m in messages if len(m.value) <= self.limit]
        if oversize:
            raise MessageRejected([(m, "too large") for m in oversize])


def test_a_record_the_producer_refuses_fails_only_its_request(database_url):
    migrate(make_settings("127.0.0.1:1", "x.", database_url))
    engine = db.make_engine(database_url)
    producer = RefusingProducer(limit=5_000)
    ingestor = Ingestor(
        sessions=db.make_sessions(engine),
        producer=producer,
        topic="t.events.v1",
        wait_s=3.0,
        stale_s=60.0,
        retry_after_s=5,
        max_record_bytes=1_000_000,  # the door lets it through: the producer is the second line
    )
    try:
        big = make_event()
        big["data"]["note"] = "x" * 10_000
        events = [CloudEvent.model_validate(e) for e in [make_event(), big, make_event()]]
        futures = [ingestor.submit([event]) for event in events]
        with pytest.raises(Problem) as refused:
            futures[1].result(timeout=10)
        assert refused.value.status == 413
        assert [f.result(timeout=10).accepted for f in (futures[0], futures[2])] == [1, 1]
        published = {json.loads(m.value)["id"] for m in producer.published}
        assert published == {events[0].id, events[2].id}
    finally:
        ingestor.close()
        engine.dispose()


def test_the_producer_refuses_an_oversize_record_without_sending_it():
    producer = Producer(["127.0.0.1:1"], client_id="t", max_request_bytes=10_000)
    big = OutgoingMessage(topic="t", value=b"x" * 20_000, key="k")

    with pytest.raises(MessageRejected) as refused:
        producer.publish([big, big])

    assert [message for message, _ in refused.value.rejected] == [big, big]
    assert producer._producer is None  # never connected: nothing was sent
