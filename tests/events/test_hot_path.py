"""The intake's hot path gives the same answers as the careful path it shortcuts.

`binding.validate` parses and validates a body in one pass and falls back to the checked path
for anything unusual; `claims.incoming` computes an event's hash, wire form and record value
once; `api.EventsApp` serves `POST /v1/events` before FastAPI's middleware and routing. Each
is compared here with what it replaces.
"""

from __future__ import annotations

import asyncio
import gc
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from common.auth import Principal
from common.jsonguard import JsonGuard
from common.problems import Problem
from schemas.events import CloudEvent
from services.events import api, flows
from services.events.intake import binding, claims
from services.events.intake.claims import LoopAnswer, Mailbox, Outcome, Ticket
from tests.events.conftest import BATCH, DEMO, STRUCTURED, make_event

RECEIVED = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def envelope(body: Any, content_type: str = STRUCTURED) -> binding.Envelope:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return binding.Envelope(binding.mode_for({"content-type": content_type}), raw, {})


def outcome(call) -> Any:
    """What a validation call returns, or the problem it raises (status, title, errors)."""
    try:
        return [event.to_wire() for event in call()]
    except Problem as problem:
        return (problem.status, problem.title, problem.errors)


BODIES: list[tuple[str, bytes | Any, str]] = [
    ("valid", make_event(id="same"), STRUCTURED),
    ("valid without time", {**make_event(id="same"), "time": None}, STRUCTURED),
    ("bad phone", make_event(data={"citizen": {"id": "x", "phone": "600"}}), STRUCTURED),
    ("missing subject", {k: v for k, v in make_event().items() if k != "subject"}, STRUCTURED),
    ("not an object", [1, 2], STRUCTURED),
    ("syntax error", b'{"id": ', STRUCTURED),
    (
        "NaN in data",
        json.dumps(make_event(data={"citizen": {"id": "x"}, "n": float("nan")})).encode(),
        STRUCTURED,
    ),
    ("lone surrogate", b'{"id": "\\ud800"}', STRUCTURED),
    ("escaped NUL", json.dumps(make_event(subject="a\x00b")).encode(), STRUCTURED),
    ("batch", [make_event(id="a"), make_event(id="b")], BATCH),
    ("batch, one bad", [make_event(id="a"), make_event(specversion="0.3")], BATCH),
    ("batch, not a list", make_event(), BATCH),
    ("batch, too long", [make_event(id=str(i)) for i in range(4)], BATCH),
]


@pytest.mark.parametrize(
    ("body", "content_type"), [(b, c) for _, b, c in BODIES], ids=[n for n, _, _ in BODIES]
)
def test_the_fast_path_answers_exactly_as_the_checked_path(body, content_type):
    request = envelope(body, content_type)
    fast = outcome(lambda: binding.validate(request, max_batch=3))
    checked = outcome(lambda: binding._checked(request, max_batch=3))
    assert fast == checked


def test_the_fast_path_rejects_what_the_checked_path_rejects():
    problem = outcome(lambda: binding.validate(envelope(b'{"a": Infinity}'), max_batch=3))
    assert problem[0] == 422
    assert problem[2] == [{"path": "", "message": "invalid JSON: Infinity is not valid JSON"}]


@pytest.mark.parametrize("time", ["2026-11-29T09:00:00+01:00", None])
def test_an_incoming_event_keeps_the_payload_hash_and_publishes_its_wire_form(time):
    event = CloudEvent.model_validate({**make_event(), "time": time})
    item = claims.incoming(event, RECEIVED)
    assert item.payload_hash == flows.payload_hash(event)  # stored hashes stay comparable
    assert item.wire == item.event.to_wire() == event.with_time(RECEIVED).to_wire()
    assert item.value is not None
    assert json.loads(item.value) == item.wire
    message = claims.wire_message("t", item.wire, event.subject, item.value)
    assert json.loads(message.value) == json.loads(
        claims.wire_message("t", item.wire, event.subject).value
    )


def test_an_event_without_time_gets_the_time_it_was_received():
    event = CloudEvent.model_validate({**make_event(), "time": None})
    item = claims.incoming(event, RECEIVED)
    assert item.wire is not None
    assert item.wire["time"] == "2026-11-29T10:00:00Z"


def test_a_loop_answer_settles_its_waiter_from_another_thread():
    async def scenario() -> tuple[Outcome, bool]:
        answer = LoopAnswer(Mailbox(asyncio.get_running_loop()))
        ticket = Ticket([], RECEIVED, deadline=0.0, answer=answer)
        await asyncio.to_thread(ticket.succeed)
        got = await answer.waiter
        await asyncio.to_thread(ticket.fail, RuntimeError("too late"))  # answered already
        return got, answer.done()

    got, done = asyncio.run(scenario())
    assert got == Outcome(0, 0, [])
    assert done


def test_a_cancelled_caller_is_not_claimed():
    async def scenario() -> bool:
        answer = LoopAnswer(Mailbox(asyncio.get_running_loop()))
        answer.waiter.cancel()
        started = answer.start()
        answer.set_result(Outcome(1, 0, ["x"]))  # dropped, without error
        await asyncio.sleep(0)
        return started

    assert asyncio.run(scenario()) is False


def test_the_lane_answers_like_the_documented_route(shared_client):
    event = make_event()
    answered = shared_client.post(
        "/v1/events", content=json.dumps(event), headers={**DEMO, "Content-Type": STRUCTURED}
    )
    assert answered.status_code == 202
    assert answered.headers["content-type"] == "application/json"
    assert answered.json() == {"accepted": 1, "duplicates": 0, "ids": [event["id"]]}
    conflict = shared_client.post(
        "/v1/events",
        content=json.dumps({**event, "type": "other"}),
        headers={**DEMO, "Content-Type": STRUCTURED},
    )
    assert conflict.status_code == 409
    assert conflict.headers["content-type"] == "application/problem+json"
    assert conflict.json()["type"] == "urn:avisa:problem:conflict"
    unauthenticated = shared_client.post("/v1/events", content=b"{}")
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["www-authenticate"] == "Bearer"
    openapi = shared_client.get("/openapi.json").json()
    assert (
        "application/cloudevents+json"
        in (openapi["paths"]["/v1/events"]["post"]["requestBody"]["content"])
    )


@pytest.mark.parametrize(
    "ids", [["a"], ["ev-1", "demo/x"], [], ['q"uote\\', "ñ\u2028😀", "\x00\n"]]
)
def test_the_accepted_body_writes_the_ids_as_json_dumps_does(ids):
    body = api.accepted_body(Outcome(len(ids), 1, ids))
    assert body == b'{"accepted":%d,"duplicates":1,"ids":%s}' % (len(ids), json.dumps(ids).encode())
    assert json.loads(body) == {"accepted": len(ids), "duplicates": 1, "ids": ids}


def test_an_unexpected_error_in_the_lane_is_a_problem_and_reaches_the_server(
    shared_client, monkeypatch
):
    async def broken(events: Any, **_: Any) -> Outcome:
        raise RuntimeError("a bug")

    monkeypatch.setattr(shared_client.app.state.services.ingestor, "accept_async", broken)
    body, headers = json.dumps(make_event()), {**DEMO, "Content-Type": STRUCTURED}
    with pytest.raises(RuntimeError, match="a bug"):  # raised on, as to uvicorn (which logs it)
        shared_client.post("/v1/events", content=body, headers=headers)
    quiet = TestClient(shared_client.app, raise_server_exceptions=False)
    answered = quiet.post("/v1/events", content=body, headers=headers)
    assert answered.status_code == 500
    assert answered.headers["content-type"] == "application/problem+json"
    assert answered.json()["title"] == "Internal error"
    assert "a bug" not in answered.text


def test_the_intake_skips_no_middleware_it_does_not_reproduce(shared_client):
    # `EventsApp` serves POST /v1/events before the stack and applies JsonGuard's check and
    # the error handlers itself (test_hostile_bodies.py, the test above). A middleware added
    # to the app would not run for the intake: add it to `EventsApp.__call__` too, then here.
    assert isinstance(shared_client.app, api.EventsApp)
    classes: list[object] = [m.cls for m in shared_client.app.user_middleware]
    assert classes == [JsonGuard]


def test_a_known_agency_key_is_answered_from_the_caches(shared_client):
    # The intake's common case: no thread hop, because nothing needs the database.
    headers = {**DEMO, "Content-Type": STRUCTURED}
    assert shared_client.post("/v1/events", content=json.dumps(make_event()), headers=headers)
    svc = shared_client.app.state.services
    bearer = DEMO["Authorization"].encode()
    request = Request({"type": "http", "headers": [(b"authorization", bearer)]})
    assert api._cached_agency(request, svc) == Principal(role="agency", agency_id="demo")
    unknown = Request({"type": "http", "headers": [(b"authorization", b"Bearer avk_unknown")]})
    assert api._cached_agency(unknown, svc) is None


@pytest.mark.parametrize("scheme", ["Basic", "Token", ""])
def test_a_cached_key_under_another_scheme_is_refused(shared_client, scheme):
    headers = {**DEMO, "Content-Type": STRUCTURED}
    assert shared_client.post("/v1/events", content=json.dumps(make_event()), headers=headers)
    key = DEMO["Authorization"].partition(" ")[2]  # now cached, with its agency's limits
    refused = shared_client.post(
        "/v1/events",
        content=json.dumps(make_event()),
        headers={"Authorization": f"{scheme} {key}".strip(), "Content-Type": STRUCTURED},
    )
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    lower = {"Authorization": f"bearer {key}", "Content-Type": STRUCTURED}
    assert (
        shared_client.post(
            "/v1/events", content=json.dumps(make_event()), headers=lower
        ).status_code
        == 202
    )


def test_other_methods_and_paths_still_go_through_the_router(shared_client):
    assert shared_client.get("/v1/events", headers=DEMO).status_code == 405
    assert shared_client.post("/v1/eventsx", headers=DEMO).status_code == 404


def test_a_mailbox_delivers_a_group_answered_together_and_skips_abandoned_callers():
    async def scenario() -> tuple[Outcome, str]:
        mailbox = Mailbox(asyncio.get_running_loop())
        answers = [LoopAnswer(mailbox) for _ in range(3)]
        answers[1].waiter.cancel()

        def answer_all() -> None:
            answers[0].set_result(Outcome(1, 0, ["a"]))
            answers[1].set_result(Outcome(1, 0, ["b"]))
            answers[2].set_exception(RuntimeError("refused"))

        await asyncio.to_thread(answer_all)
        first = await answers[0].waiter
        with pytest.raises(RuntimeError) as raised:
            await answers[2].waiter
        return first, str(raised.value)

    assert asyncio.run(scenario()) == (Outcome(1, 0, ["a"]), "refused")


def test_a_started_service_leaves_its_startup_heap_out_of_collections(shared_client):
    assert shared_client.get("/readyz").status_code in (200, 503)  # the lifespan has run
    assert gc.get_freeze_count() > 0


def test_an_incoming_event_knows_its_key_from_its_event():
    event = CloudEvent.model_validate(make_event(id="k-1", source="demo/unit"))
    item = claims.incoming(event, RECEIVED)
    assert item.key == ("demo/unit", "k-1") == flows.key_of(item.event)
