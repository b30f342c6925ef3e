"""Falling back after a later failure: a message the provider accepted, then reported
undelivered (Twilio) or bounced/dropped (SendGrid), goes out on the next allowed channel -
once, whatever the webhooks repeat or reorder - through the real signed webhooks."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from services.notifier.models import Attempt
from tests.notifier.factories import make_request
from tests.notifier.kafkatools import eventually, read_until
from tests.notifier.test_citizens import PUBLIC_KEY, deliver, sendgrid_post, twilio_post
from tests.notifier.test_delivery import (
    ADMIN,
    TWILIO,
    final,
    make_settings,
    running,
    send,
    status_changes,
    statuses,
)


@pytest.fixture
def notifier(broker, topic_prefix, database_url, providers, tmp_path):
    settings = make_settings(
        broker,
        topic_prefix,
        database_url,
        tmp_path,
        twilio_base_url=providers.url,
        sendgrid_base_url=providers.url,
        sendgrid_webhook_public_key=PUBLIC_KEY,
        **TWILIO,
    )
    with running(settings) as client:
        yield client, settings


def twilio_status(client, request, sid, status, code=""):
    params = {"MessageSid": sid, "MessageStatus": status, "ErrorCode": code, "To": "+34600111222"}
    response = twilio_post(client, f"/v1/providers/twilio/status?n={request.id}", params)
    assert response.status_code == 204
    return response


def sendgrid_event(client, request, mail, event_id, kind, **extra):
    event = {
        "sg_event_id": event_id,
        "event": kind,
        "sg_message_id": f"{mail['message_id']}.filter0001",
        "notification_id": request.id,
        "email": "ana@example.es",
    } | extra
    assert sendgrid_post(client, [event]).status_code == 204


def sent_on(channel):
    return lambda changes: any(
        c.status.value == "sent" and c.channel and c.channel.value == channel for c in changes
    )


def attempts(client, request):
    view = client.get(f"/v1/notifications/{request.id}", headers=ADMIN).json()
    return view, [(a["channel"], a["status"], a["error_code"]) for a in view["attempts"]]


def dead_letters(settings, request):
    records = read_until(
        settings.kafka_bootstrap,
        settings.topics.deadletter,
        lambda rs: any(json.loads(r.value)["id"] == request.id for r in rs),
    )
    return [r for r in records if json.loads(r.value)["id"] == request.id]


def test_an_undelivered_sms_falls_back_to_email_once(notifier, providers):
    client, settings = notifier
    request = make_request(channels=("sms", "email"), delivery="first")
    deliver(settings, request)
    [sms] = providers.twilio_requests()
    twilio_status(client, request, sms["sid"], "undelivered", "30003")
    twilio_status(client, request, sms["sid"], "undelivered", "30003")  # a replay
    twilio_status(client, request, sms["sid"], "failed", "30003")  # another final status
    twilio_status(client, request, sms["sid"], "sent")  # an older status, late
    changes = status_changes(settings, sent_on("email"))
    assert statuses(changes, request.id) == [
        ("queued", None),
        ("sent", "sms"),
        ("queued", "sms"),
        ("sent", "email"),
    ]
    fallback = next(c for c in changes if c.status.value == "queued" and c.channel)
    assert fallback.provider_reference == sms["sid"]
    assert "30003" in (fallback.detail or "") and "falling back to email" in (fallback.detail or "")
    twilio_status(client, request, sms["sid"], "undelivered", "30003")  # after the fallback
    assert len(providers.sendgrid_requests()) == 1 and len(providers.twilio_requests()) == 1
    view, tried = attempts(client, request)
    assert view["status"] == "sent" and view["channel"] == "email"
    assert tried == [("sms", "failed", "30003"), ("email", "sent", None)]


def test_a_bounced_email_falls_back_to_sms_and_deferred_is_not_a_failure(notifier, providers):
    client, settings = notifier
    request = make_request(channels=("email", "sms"), delivery="first")
    deliver(settings, request)
    [mail] = providers.sendgrid_requests()
    sendgrid_event(client, request, mail, "ev-deferred", "deferred", response="try later")
    _view, tried = attempts(client, request)
    assert tried == [("email", "sent", None)] and providers.twilio_requests() == []
    bounce = {"reason": "550 mailbox unavailable", "status": "5.1.1"}
    sendgrid_event(client, request, mail, "ev-bounce", "bounce", **bounce)
    sendgrid_event(client, request, mail, "ev-bounce", "bounce", **bounce)  # a replay
    sendgrid_event(client, request, mail, "ev-drop", "dropped", reason="Bounced Address")
    changes = status_changes(settings, sent_on("sms"))
    assert statuses(changes, request.id) == [
        ("queued", None),
        ("sent", "email"),
        ("queued", "email"),
        ("sent", "sms"),
    ]
    assert len(providers.twilio_requests()) == 1 and len(providers.sendgrid_requests()) == 1
    _view, tried = attempts(client, request)
    assert tried == [("email", "failed", "5.1.1"), ("sms", "sent", None)]


def test_with_delivery_all_a_later_failure_fails_the_notification(notifier, providers):
    client, settings = notifier
    request = make_request(delivery="all")
    send(settings, request)
    status_changes(settings, sent_on("email"))
    [sms] = providers.twilio_requests()
    twilio_status(client, request, sms["sid"], "undelivered", "30005")
    changes = status_changes(settings, lambda cs: any(c.status.value == "failed" for c in cs))
    failed = [c for c in changes if c.status.value == "failed"]
    assert [(c.channel.value if c.channel else None) for c in failed] == ["sms"]
    assert "30005" in (failed[0].detail or "")
    assert len(dead_letters(settings, request)) == 1
    assert len(providers.twilio_requests()) == 1 and len(providers.sendgrid_requests()) == 1
    assert attempts(client, request)[0]["status"] == "failed"


def test_when_no_channel_is_left_the_notification_fails_with_a_dead_letter(notifier, providers):
    client, settings = notifier
    request = make_request(channels=("sms", "email"))
    deliver(settings, request)
    client.put("/v1/citizens/ES-12345678Z/preferences", json={"opt_out": ["email"]}, headers=ADMIN)
    [sms] = providers.twilio_requests()
    twilio_status(client, request, sms["sid"], "failed", "30008")
    changes = status_changes(settings, lambda cs: any(c.status.value == "failed" for c in cs))
    assert statuses(changes, request.id)[-1] == ("failed", "sms")
    [dead] = dead_letters(settings, request)
    assert b"30008" in dict(dead.headers)["avisa-dlq-error"]
    assert providers.sendgrid_requests() == []
    view, _ = attempts(client, request)
    assert view["status"] == "failed"


def test_a_fallback_waits_for_the_end_of_quiet_hours(notifier, providers):
    client, settings = notifier
    request = make_request(channels=("sms", "email"))
    deliver(settings, request)
    now = datetime.now(UTC)
    quiet = {"start": f"{(now.hour - 1) % 24:02d}:00", "end": f"{(now.hour + 2) % 24:02d}:00"}
    client.put(
        "/v1/citizens/ES-12345678Z/preferences",
        json={"quiet_hours": quiet, "timezone": "UTC"},
        headers=ADMIN,
    )
    [sms] = providers.twilio_requests()
    twilio_status(client, request, sms["sid"], "undelivered", "30003")
    changes = status_changes(settings, lambda cs: any(c.status.value == "deferred" for c in cs))
    deferred = next(c for c in changes if c.status.value == "deferred")
    assert (
        deferred.scheduled_for is not None
        and deferred.scheduled_for.strftime("%H:%M") == (quiet["end"])
    )
    assert providers.sendgrid_requests() == []


def test_a_fallback_past_not_after_is_suppressed_as_expired(notifier, providers):
    client, settings = notifier
    not_after = datetime.now(UTC) + timedelta(seconds=3)
    request = make_request(channels=("sms", "email"), not_after=not_after)
    deliver(settings, request)
    eventually(lambda: datetime.now(UTC) > not_after, timeout_s=10)
    [sms] = providers.twilio_requests()
    twilio_status(client, request, sms["sid"], "undelivered", "30003")
    changes = status_changes(settings, lambda cs: final_after_fallback(cs, request.id))
    assert statuses(changes, request.id)[-1] == ("suppressed", None)
    assert [c.detail for c in changes if c.status.value == "suppressed"] == ["expired"]
    assert providers.sendgrid_requests() == []


def final_after_fallback(changes, notification_id):
    mine = [c for c in changes if c.notification_id == notification_id]
    return len(mine) > 3 and final(mine[3:], notification_id)


def test_a_report_that_arrives_before_our_record_of_the_send_waits_for_it(notifier, providers):
    client, settings = notifier
    request = make_request(channels=("sms", "email"))
    deliver(settings, request)
    [sms] = providers.twilio_requests()
    state = client.app.state  # type: ignore[attr-defined]
    state.webhooks = replace(state.webhooks, settle_timeout_s=0.3)
    # As if Twilio called back between its answer and our commit of `sent`.
    with state.sessions.begin() as session:
        session.execute(update(Attempt).values(status="sending", provider_reference=None))
    params = {"MessageSid": sms["sid"], "MessageStatus": "undelivered", "ErrorCode": "30003"}
    path = f"/v1/providers/twilio/status?n={request.id}"
    # Twilio does not retry a callback we fail: past the wait it is parked, not refused.
    assert twilio_post(client, path, params).status_code == 204
    assert attempts(client, request)[1] == [("sms", "sending", None)]
    with state.sessions.begin() as session:
        session.execute(update(Attempt).values(status="sent", provider_reference=sms["sid"]))
    status_changes(settings, sent_on("email"))
    assert len(providers.sendgrid_requests()) == 1
    assert attempts(client, request)[1] == [("sms", "failed", "30003"), ("email", "sent", None)]
