"""Provider webhooks under hostile or broken input: replays change nothing, bad fields are a
422 (never a 500), and what goes to the provider carries no bidirectional controls."""

from __future__ import annotations

import time

import pytest

from services.notifier import flows
from tests.notifier import test_citizens
from tests.notifier.factories import make_request
from tests.notifier.test_citizens import (
    INBOUND,
    deliver,
    inbound,
    preferences,
    sendgrid_post,
    sid,
    twilio_post,
)
from tests.notifier.test_delivery import ADMIN, statuses

PHONE = "+34600111222"

notifier = test_citizens.notifier  # the fixture


def test_a_replayed_inbound_start_changes_nothing(notifier, providers):
    client, _ = notifier
    client.put("/v1/citizens/ES-12345678Z/preferences", json={"phone": PHONE}, headers=ADMIN)
    start = inbound(PHONE, "START")
    for params in (inbound(PHONE, "STOP"), start, inbound(PHONE, "STOP")):
        assert twilio_post(client, INBOUND, params).status_code == 200
    assert preferences(client)["opt_out"] == ["sms"]
    replay = twilio_post(client, INBOUND, start)
    assert replay.status_code == 200 and "<Message>" not in replay.text
    assert preferences(client)["opt_out"] == ["sms"]


def test_a_replayed_help_request_is_not_answered_twice(notifier):
    client, _ = notifier
    ayuda = inbound(PHONE, "AYUDA")
    assert "<Message>" in twilio_post(client, INBOUND, ayuda).text
    assert "<Message>" not in twilio_post(client, INBOUND, ayuda).text


@pytest.mark.parametrize(
    ("field", "value"),
    [("MessageSid", None), ("MessageSid", "SM" + "0" * 500), ("From", "+3" + "4" * 400)],
)
def test_a_signed_inbound_with_a_bad_field_is_a_422_naming_it(notifier, field, value):
    client, _ = notifier
    params = inbound(PHONE, "STOP")
    if value is None:
        del params[field]
    else:
        params[field] = value
    answer = twilio_post(client, INBOUND, params)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert [e["path"] for e in answer.json()["errors"]] == [field]
    assert preferences(client)["opt_out"] == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ErrorCode", "²"),
        ("ErrorCode", "9" * 5000),
        ("MessageSid", "x" * 300),
        ("To", "+34" + "6" * 500),
    ],
)
def test_a_signed_status_callback_with_a_bad_field_is_a_422(notifier, providers, field, value):
    client, settings = notifier
    request = make_request(channels=("sms",))
    deliver(settings, request)
    [sms] = providers.twilio_requests()
    params = {"MessageSid": sms["sid"], "MessageStatus": "undelivered", "ErrorCode": "30003"}
    params |= {"To": PHONE, field: value}
    answer = twilio_post(client, f"/v1/providers/twilio/status?n={request.id}", params)
    assert answer.status_code == 422, answer.text
    assert [e["path"] for e in answer.json()["errors"]] == [field]
    view = client.get(f"/v1/notifications/{request.id}", headers=ADMIN).json()
    assert view["status"] == "sent"


def test_an_unknown_message_sid_in_a_callback_changes_nothing(notifier):
    client, _ = notifier
    params = {"MessageSid": sid(), "MessageStatus": "undelivered", "ErrorCode": "21610"}
    answer = twilio_post(client, "/v1/providers/twilio/status", params | {"To": PHONE})
    assert answer.status_code == 204
    assert preferences(client)["opt_out"] == []


BIDI = "\u202e\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def test_bidirectional_controls_never_reach_the_provider(notifier, providers):
    _, settings = notifier
    sms = make_request(channels=("sms",), sms=f"Paga en {BIDI}https://sede.example{BIDI} hoy")
    email = make_request(channels=("email",), subject=f"Tu permiso {BIDI}caduca")
    for request in (sms, email):
        assert statuses(deliver(settings, request), request.id)[-1][0] == "sent"
    [sent_sms] = providers.twilio_requests()
    [sent_email] = providers.sendgrid_requests()
    assert sent_sms["form"]["Body"] == "Paga en https://sede.example hoy"
    assert sent_email["body"]["subject"] == "Tu permiso caduca"


def test_strip_bidi_controls_keeps_everything_else():
    text = "مرحبا Ana, ñ € 😀 \u200d\n"
    assert flows.strip_bidi_controls(f"\u202e{text}\u2069") == text


def bounce_of(request, message_id: str, **fields) -> dict[str, object]:
    return {
        "sg_event_id": sid(),
        "event": "bounce",
        "reason": "550 mailbox unavailable",
        "status": "5.1.1",
        "sg_message_id": f"{message_id}.filter0001",
        "notification_id": request.id,
    } | fields


def sent_email(notifier, providers):
    client, settings = notifier
    request = make_request(channels=("email",))
    deliver(settings, request)
    [mail] = providers.sendgrid_requests()
    return client, request, mail["message_id"]


def status_of(client, request) -> str:
    return client.get(f"/v1/notifications/{request.id}", headers=ADMIN).json()["status"]


@pytest.mark.parametrize("timestamp", ["978307200", "-1", "abc", "", "1" * 40, "ten-years"])
def test_a_validly_signed_sendgrid_body_with_an_absurd_timestamp_is_refused(
    notifier, providers, timestamp
):
    client, request, message_id = sent_email(notifier, providers)
    answer = sendgrid_post(client, [bounce_of(request, message_id)], timestamp=timestamp)
    assert answer.status_code == 403, answer.text
    assert status_of(client, request) == "sent"


def test_a_sendgrid_body_signed_ten_years_ahead_or_eleven_minutes_ago_is_refused(
    notifier, providers
):
    client, request, message_id = sent_email(notifier, providers)
    now = int(time.time())
    for moment in (now + 10 * 365 * 86400, now - 660):
        answer = sendgrid_post(client, [bounce_of(request, message_id)], timestamp=str(moment))
        assert answer.status_code == 403
    assert status_of(client, request) == "sent"
    recent = sendgrid_post(client, [bounce_of(request, message_id)], timestamp=str(now - 60))
    assert recent.status_code == 204 and status_of(client, request) == "failed"


@pytest.mark.parametrize(
    "bad",
    [
        {"timestamp": "abc"},
        {"timestamp": 10**400},
        {"timestamp": -1},
        {"sg_event_id": "\ud800"},
        {"sg_event_id": "e" * 5000},
        {"notification_id": ["a", "b"]},
        {"status": "9" * 500},
        {"reason": "\ud800"},
        {"sg_message_id": "m" * 500},
        {"event": {"nested": True}},
    ],
)
def test_a_bad_sendgrid_event_is_skipped_and_the_others_apply(notifier, providers, bad):
    client, request, message_id = sent_email(notifier, providers)
    other = make_request(channels=("email",))
    deliver(notifier[1], other)
    other_message = providers.sendgrid_requests()[-1]["message_id"]
    events = [bounce_of(request, message_id, **bad), bounce_of(other, other_message)]
    answer = sendgrid_post(client, events)
    assert answer.status_code == 204, answer.text
    assert status_of(client, other) == "failed"
    expected = "failed" if "timestamp" in bad else "sent"  # its timestamp is never used
    assert status_of(client, request) == expected


def test_a_sendgrid_body_nested_too_deep_is_a_422(notifier):
    client, _ = notifier
    answer = sendgrid_post(client, [], raw="[" * 5000 + "]" * 5000)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
