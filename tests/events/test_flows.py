"""Pure steps: payload hashes, deduplication plans, status order and the HTTP binding modes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from common.problems import Problem
from schemas.events import CloudEvent
from schemas.notifications import Status
from services.events import flows
from services.events.errors import PayloadConflict
from services.events.flows import Incoming, Stored
from services.events.intake import binding
from tests.events.conftest import make_event

T0 = datetime(2026, 11, 29, 10, tzinfo=UTC)


def incoming(**overrides) -> Incoming:
    event = CloudEvent.model_validate(make_event(**overrides))
    return Incoming(event, flows.payload_hash(event))


def test_the_payload_hash_ignores_the_defaulted_time_but_not_the_data():
    event = CloudEvent.model_validate(make_event(id="a"))
    timed = event.with_time(T0)

    assert flows.payload_hash(event) == flows.payload_hash(
        CloudEvent.model_validate(make_event(id="a", subject=event.subject))
    )
    assert flows.payload_hash(timed) != flows.payload_hash(event)
    assert flows.payload_hash(event) != flows.payload_hash(event.model_copy(update={"type": "x"}))


def test_a_plan_splits_new_events_duplicates_and_keys_still_pending():
    new, known, pending = incoming(id="new"), incoming(id="known"), incoming(id="pending")
    stored = {
        known.key: Stored(known.payload_hash, "accepted"),
        pending.key: Stored(pending.payload_hash, "pending"),
    }

    plan = flows.plan([new, known, pending, new], stored)

    assert [item.key for item in plan.new] == [new.key]
    assert plan.duplicates == 2
    assert plan.waiting == [pending.key]


def test_a_reused_id_with_other_data_is_a_conflict():
    first = incoming(id="same")
    other = incoming(id="same", type="license.renewed")

    with pytest.raises(PayloadConflict):
        flows.plan([other], {first.key: Stored(first.payload_hash, "accepted")})
    with pytest.raises(PayloadConflict):
        flows.plan([first, other], {})


@pytest.mark.parametrize(
    ("new", "minutes", "current", "expected"),
    [
        (Status.SENT, 5, Status.DELIVERED, False),  # late `sent` never undoes `delivered`
        (Status.DELIVERED, -5, Status.SENT, True),
        (Status.QUEUED, 5, Status.DEFERRED, True),  # same stage: the later one wins
        (Status.DEFERRED, -5, Status.QUEUED, False),
        (Status.CANCELLED, 1, Status.SCHEDULED, True),
        (Status.SCHEDULED, 1, Status.CANCELLED, False),
    ],
)
def test_status_order_tolerates_late_arrivals(new, minutes, current, expected):
    assert flows.supersedes(new, T0 + timedelta(minutes=minutes), current, T0) is expected


@pytest.mark.parametrize(
    ("headers", "mode"),
    [
        ({"content-type": "application/cloudevents+json; charset=utf-8"}, binding.Mode.STRUCTURED),
        ({"content-type": "application/json"}, binding.Mode.STRUCTURED),
        ({"content-type": "application/cloudevents-batch+json"}, binding.Mode.BATCH),
        ({"content-type": "application/json", "ce-specversion": "1.0"}, binding.Mode.BINARY),
        ({"ce-specversion": "1.0"}, binding.Mode.BINARY),
    ],
)
def test_the_binding_mode_follows_the_headers(headers, mode):
    assert binding.mode_for(headers) is mode


@pytest.mark.parametrize(
    "headers",
    [{}, {"content-type": "text/plain"}, {"content-type": "text/xml", "ce-specversion": "1.0"}],
)
def test_unreadable_content_types_are_415(headers):
    with pytest.raises(Problem) as raised:
        binding.mode_for(headers)
    assert raised.value.status == 415


def test_batch_errors_are_prefixed_with_the_index():
    bad = make_event(specversion="0.3")
    del bad["data"]["citizen"]["id"]
    body = json.dumps([make_event(), 7, bad]).encode()
    envelope = binding.Envelope(binding.Mode.BATCH, body, {})

    with pytest.raises(Problem) as raised:
        binding.validate(envelope, max_batch=10)

    paths = sorted(e["path"] for e in raised.value.errors or [])
    assert paths == ["[1]", "[2].data.citizen.id", "[2].specversion"]


def test_batches_over_the_limit_are_refused():
    envelope = binding.Envelope(binding.Mode.BATCH, b"[" + b",".join([b"{}"] * 3) + b"]", {})
    with pytest.raises(Problem) as raised:
        binding.validate(envelope, max_batch=2)
    assert raised.value.status == 422
