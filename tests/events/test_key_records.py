"""keys.v1: the events service publishes every agency key's record (its hash, never the key)
when it is created or revoked, and all of them again when it starts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from common.auth import hash_key
from schemas.keys import KeyRecord
from tests.events.conftest import ADMIN, running


def records(settings, done: Callable[[list[KeyRecord]], bool]) -> list[KeyRecord]:
    """keys.v1 from the beginning, once `done(records)` or after 20 s."""
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    found: list[KeyRecord] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not done(found):
            partitions = consumer.partitions_for_topic(settings.topics.keys) or set()
            if not partitions:
                time.sleep(0.1)
                continue
            assigned = [TopicPartition(settings.topics.keys, p) for p in sorted(partitions)]
            consumer.assign(assigned)
            consumer.seek_to_beginning(*assigned)
            found = []
            end = time.monotonic() + 1
            while time.monotonic() < end:
                for batch in consumer.poll(timeout_ms=100).values():
                    found += [KeyRecord.model_validate_json(r.value) for r in batch]
        return found
    finally:
        consumer.close()


def of(key: str) -> Callable[[list[KeyRecord]], list[Any]]:
    return lambda found: [
        (r.agency_id, r.prefix, r.revoked) for r in found if r.key_hash == hash_key(key)
    ]


def test_created_and_revoked_keys_are_published_and_republished_at_start(settings):
    with running(settings) as client:
        client.post("/v1/agencies", json={"id": "dgt", "name": "DGT"}, headers=ADMIN)
        key = client.post("/v1/agencies/dgt/keys", headers=ADMIN).json()["key"]
        prefix = key[4:12]
        assert of(key)(records(settings, lambda rs: bool(of(key)(rs)))) == [("dgt", prefix, False)]
        assert client.delete(f"/v1/agencies/dgt/keys/{prefix}", headers=ADMIN).status_code == 204
        published = records(settings, lambda rs: len(of(key)(rs)) == 2)
        assert of(key)(published) == [("dgt", prefix, False), ("dgt", prefix, True)]
        assert all(key not in r.model_dump_json() for r in published)
    with running(settings):  # a restart republishes every key as it stands
        again = records(settings, lambda rs: len(of(key)(rs)) == 3)
    assert of(key)(again)[-1] == ("dgt", prefix, True)
