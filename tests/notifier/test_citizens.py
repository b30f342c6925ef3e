"""Citizens and providers end to end: preferences, opt-outs, STOP, one-click unsubscribe,
signed Twilio and SendGrid webhooks, quiet-hours deferral through the scheduler."""

from __future__ import annotations

import base64
import json
import secrets
import time
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import update
from twilio.request_validator import RequestValidator

from common.db import make_engine, make_sessions
from services.notifier import tokens
from services.notifier.models import Deferral
from tests.notifier.factories import make_request
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

PUBLIC = "http://127.0.0.1:8003"
READ_ONLY = ("changed_by", "changed_at", "opt_out_locked")
INBOUND = "/v1/providers/twilio/inbound"
PRIVATE_KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC_KEY = base64.b64encode(
    PRIVATE_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()


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


def sid() -> str:
    """A fresh Twilio message SID."""
    return "SM" + secrets.token_hex(16)


def inbound(from_: str, body: str, *, message_sid: str | None = None) -> dict[str, str]:
    """The form of an inbound SMS as Twilio posts it."""
    return {"MessageSid": message_sid or sid(), "From": from_, "Body": body, "To": "+15005550006"}


def twilio_post(client, path, params, *, token="secret", signature=None):
    signature = signature or RequestValidator(token).compute_signature(PUBLIC + path, params)
    return client.post(
        path,
        content=urlencode(params),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )


def sendgrid_post(client, events, *, key=PRIVATE_KEY, timestamp=None, raw=None):
    payload = raw if raw is not None else json.dumps(events)
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    signature = key.sign((timestamp + payload).encode(), ec.ECDSA(hashes.SHA256()))
    return client.post(
        "/v1/providers/sendgrid/events",
        content=payload,
        headers={
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        },
    )


def preferences(client, citizen="ES-12345678Z"):
    return client.get(f"/v1/citizens/{citizen}/preferences", headers=ADMIN).json()


def deliver(settings, request):
    send(settings, request)
    return status_changes(settings, lambda cs: final(cs, request.id))


def test_preferences_round_trip_and_validation(notifier):
    client, _ = notifier
    doc = {
        "channels": ["email", "sms"],
        "opt_out": [],
        "quiet_hours": {"start": "22:00", "end": "07:30"},
        "timezone": "Atlantic/Canary",
        "locale": "en",
        "phone": "+34600111333",
        "email": "ana@example.es",
        "opt_out_topics": ["citas"],
    }
    put = client.put("/v1/citizens/ES-1/preferences", json=doc, headers=ADMIN)
    assert put.status_code == 200
    answer = put.json()
    assert answer.pop("changed_by") == "admin" and answer.pop("changed_at")
    assert answer.pop("opt_out_locked") == []  # the admin may undo any opt-out
    assert answer == doc
    stored = preferences(client, "ES-1")
    assert {k: v for k, v in stored.items() if k not in READ_ONLY} == doc
    bad = client.put(
        "/v1/citizens/ES-1/preferences",
        json={"channels": ["fax"], "quiet_hours": {"start": "7", "end": "08:00"}},
        headers=ADMIN,
    )
    assert bad.status_code == 422
    assert {e["path"] for e in bad.json()["errors"]} == {"channels[0]", "quiet_hours.start"}
    assert client.get("/v1/citizens/ES-1/preferences").status_code == 401


def test_the_directory_opt_out_wins_and_its_phone_replaces_the_events(notifier, providers):
    client, settings = notifier
    client.put(
        "/v1/citizens/ES-12345678Z/preferences",
        json={"opt_out": ["email"], "phone": "+34600999888"},
        headers=ADMIN,
    )
    request = make_request(delivery="all")
    changes = deliver(settings, request)
    assert statuses(changes, request.id) == [("queued", None), ("sent", "sms")]
    assert [r["form"]["To"] for r in providers.twilio_requests()] == ["+34600999888"]
    assert providers.sendgrid_requests() == []


def test_stop_and_start_round_trip_by_phone(notifier, providers):
    client, settings = notifier
    client.put(
        "/v1/citizens/ES-12345678Z/preferences", json={"phone": "+34600111222"}, headers=ADMIN
    )
    stop = twilio_post(client, INBOUND, inbound("+34600111222", "BAJA"))
    assert stop.status_code == 200 and "ALTA" in stop.text
    assert preferences(client)["opt_out"] == ["sms"]
    request = make_request(channels=("sms",))
    assert deliver(settings, request)[-1].detail == "opted out"
    help_reply = twilio_post(client, INBOUND, inbound("+34600111222", "ayuda"))
    assert "<Message>" in help_reply.text
    twilio_post(client, INBOUND, inbound("+34600111222", "START"))
    assert preferences(client)["opt_out"] == []
    again = make_request(channels=("sms",))
    assert statuses(deliver(settings, again), again.id)[-1] == ("sent", "sms")


def test_badly_signed_twilio_webhooks_are_refused_and_change_nothing(notifier):
    client, _ = notifier
    params = inbound("+34600111222", "STOP")
    forged = twilio_post(client, "/v1/providers/twilio/inbound", params, token="wrong")
    unsigned = client.post("/v1/providers/twilio/inbound", data=params)
    assert (forged.status_code, unsigned.status_code) == (403, 403)
    assert preferences(client)["opt_out"] == []


def test_twilio_status_callbacks_are_deduplicated_and_never_undo_delivered(notifier, providers):
    client, settings = notifier
    request = make_request(channels=("sms",))
    deliver(settings, request)
    [sms] = providers.twilio_requests()
    path = f"/v1/providers/twilio/status?n={request.id}"
    delivered = {"MessageSid": sms["sid"], "MessageStatus": "delivered", "ErrorCode": ""}
    for params in (
        delivered,
        delivered,
        {**delivered, "MessageStatus": "undelivered", "ErrorCode": "30003"},
    ):
        assert twilio_post(client, path, params).status_code == 204
    bad = twilio_post(client, path, delivered, signature="Zm9vYmFy")
    assert bad.status_code == 403
    changes = status_changes(settings, lambda cs: any(c.status.value == "delivered" for c in cs))
    assert [c.status.value for c in changes if c.notification_id == request.id].count(
        "delivered"
    ) == 1
    view = client.get(f"/v1/notifications/{request.id}", headers=ADMIN).json()
    assert view["status"] == "delivered" and view["attempts"][0]["status"] == "delivered"


def test_an_undelivered_sms_is_failed_with_its_error_code(notifier, providers):
    client, settings = notifier
    request = make_request(channels=("sms",))
    deliver(settings, request)
    [sms] = providers.twilio_requests()
    params = {"MessageSid": sms["sid"], "MessageStatus": "undelivered", "ErrorCode": "30003"}
    twilio_post(client, f"/v1/providers/twilio/status?n={request.id}", params)
    changes = status_changes(settings, lambda cs: any(c.status.value == "failed" for c in cs))
    failed = next(c for c in changes if c.status.value == "failed")
    assert "30003" in (failed.detail or "") and failed.channel.value == "sms"


def test_sendgrid_events_are_verified_deduplicated_and_spam_opts_out(notifier, providers):
    client, settings = notifier
    request = make_request(channels=("email",))
    deliver(settings, request)
    [mail] = providers.sendgrid_requests()
    bounce = {
        "sg_event_id": "ev-1",
        "event": "bounce",
        "reason": "550 mailbox unavailable",
        "status": "5.1.1",
        "sg_message_id": f"{mail['message_id']}.filter0001",
        "notification_id": request.id,
        "email": "ana@example.es",
    }
    forged = ec.generate_private_key(ec.SECP256R1())
    assert sendgrid_post(client, [bounce], key=forged).status_code == 403
    assert client.post("/v1/providers/sendgrid/events", json=[bounce]).status_code == 403
    view = client.get(f"/v1/notifications/{request.id}", headers=ADMIN).json()
    assert view["status"] == "sent"
    assert sendgrid_post(client, [bounce]).status_code == 204
    assert sendgrid_post(client, [bounce]).status_code == 204  # replay: nothing new
    spam = {**bounce, "sg_event_id": "ev-2", "event": "spamreport"}
    assert sendgrid_post(client, [spam]).status_code == 204
    view = client.get(f"/v1/notifications/{request.id}", headers=ADMIN).json()
    assert view["status"] == "failed" and "550 mailbox unavailable" in view["detail"]
    assert preferences(client)["opt_out"] == ["email"]


def unsubscribe_token(settings, citizen_id="ES-12345678Z", *, channel="email", now=None):
    return tokens.sign(
        settings.token_keys(),
        purpose=tokens.UNSUBSCRIBE,
        subject=citizen_id,
        detail=channel,
        now=now or datetime.now(UTC),
    )


def test_one_click_unsubscribe_and_a_tampered_token(notifier):
    client, settings = notifier
    token = unsubscribe_token(settings)
    spanish = client.get(f"/unsubscribe/{token}")  # no locale on file: the default, es
    assert spanish.status_code == 200 and 'lang="es"' in spanish.text
    assert "Darme de baja" in spanish.text
    client.put("/v1/citizens/ES-12345678Z/preferences", json={"locale": "en"}, headers=ADMIN)
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and "Unsubscribe" in page.text and "<form" in page.text
    assert 'lang="en"' in page.text and "Darme de baja" not in page.text
    assert preferences(client)["opt_out"] == []
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get(f"/unsubscribe/{tampered}").status_code == 400
    sms_token = unsubscribe_token(settings, channel="sms")
    assert client.post(f"/unsubscribe/{sms_token}").status_code == 400  # email tokens only
    assert (
        client.post(f"/unsubscribe/{tampered}", data={"List-Unsubscribe": "One-Click"}).status_code
        == 400
    )
    assert preferences(client)["opt_out"] == []
    done = client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "Done" in done.text
    assert preferences(client)["opt_out"] == ["email"]


def test_quiet_hours_defer_and_the_scheduler_sends_when_due(notifier, providers):
    client, settings = notifier
    now = datetime.now(UTC)
    start = f"{(now.hour - 1) % 24:02d}:00"
    end = f"{(now.hour + 2) % 24:02d}:00"
    client.put(
        "/v1/citizens/ES-12345678Z/preferences",
        json={"quiet_hours": {"start": start, "end": end}, "timezone": "UTC"},
        headers=ADMIN,
    )
    request = make_request(channels=("sms",))
    send(settings, request)
    changes = status_changes(settings, lambda cs: any(c.status.value == "deferred" for c in cs))
    deferred = next(c for c in changes if c.status.value == "deferred")
    assert deferred.scheduled_for is not None and deferred.scheduled_for > now
    assert deferred.scheduled_for.strftime("%H:%M") == end
    assert providers.twilio_requests() == []
    # The window ends: the citizen's quiet hours are over, and the deferral's time has come.
    client.put("/v1/citizens/ES-12345678Z/preferences", json={"timezone": "UTC"}, headers=ADMIN)
    sessions = client.app.state.sessions  # type: ignore[attr-defined]
    with sessions.begin() as session:
        session.execute(update(Deferral).values(due_at=now))
    changes = status_changes(settings, lambda cs: final(cs, request.id))
    assert statuses(changes, request.id) == [
        ("queued", None),
        ("deferred", None),
        ("queued", None),
        ("sent", "sms"),
    ]
    assert len(providers.twilio_requests()) == 1


def test_an_sms_refused_with_21610_opts_the_number_out_for_every_citizen(notifier, providers):
    client, settings = notifier  # 21610: the handset replied STOP; the number is opted out
    client.put("/v1/citizens/ES-2/preferences", json={"phone": "+34600111222"}, headers=ADMIN)
    providers.script(twilio=[{"status": 400, "code": 21610}])
    request = make_request(channels=("sms", "email"))
    assert statuses(deliver(settings, request), request.id)[-1] == ("sent", "email")
    assert preferences(client, "ES-2")["opt_out"] == ["sms"]  # same phone, another citizen
    blocked = make_request(channels=("sms",), citizen_id="ES-3")  # the phone from the event
    blocked_changes = [c for c in deliver(settings, blocked) if c.notification_id == blocked.id]
    assert blocked_changes[-1].detail == "opted out"
    assert providers.twilio_requests() == []  # only the refused call was made


def test_the_default_quiet_hours_defer_durably_across_a_restart(
    broker, topic_prefix, database_url, providers, tmp_path
):
    now = datetime.now(UTC)
    window = f"{(now.hour - 1) % 24:02d}:00-{(now.hour + 2) % 24:02d}:00"
    options = {
        "twilio_base_url": providers.url,
        "sendgrid_base_url": providers.url,
        "default_timezone": "UTC",
        **TWILIO,
    }
    quiet_now = make_settings(
        broker, topic_prefix, database_url, tmp_path, quiet_hours_default=window, **options
    )
    request = make_request(channels=("sms",))  # the citizen has no quiet hours of their own
    with running(quiet_now):
        send(quiet_now, request)
        changes = status_changes(
            quiet_now, lambda cs: any(c.status.value == "deferred" for c in cs)
        )
    deferred = next(c for c in changes if c.status.value == "deferred")
    assert deferred.detail is not None and deferred.detail.startswith("quiet hours")
    assert providers.twilio_requests() == []
    # Stopped while deferred; the window is over by the time the notifier runs again.
    sessions = make_sessions(make_engine(database_url))
    with sessions.begin() as session:
        session.execute(update(Deferral).values(due_at=now))
    daytime = make_settings(
        broker, topic_prefix, database_url, tmp_path, quiet_hours_default="", **options
    )
    with running(daytime):
        changes = status_changes(daytime, lambda cs: final(cs, request.id))
    assert statuses(changes, request.id)[-1] == ("sent", "sms")
    assert len(providers.twilio_requests()) == 1


def test_a_21610_status_callback_opts_the_number_out_until_start(notifier, providers):
    client, settings = notifier  # no directory entry: the phone comes with the event
    first = make_request(channels=("sms",))
    deliver(settings, first)
    [sms] = providers.twilio_requests()
    params = {
        "MessageSid": sms["sid"],
        "MessageStatus": "undelivered",
        "ErrorCode": "21610",
        "To": sms["form"]["To"],
    }
    callback = twilio_post(client, f"/v1/providers/twilio/status?n={first.id}", params)
    assert callback.status_code == 204
    blocked = make_request(channels=("sms",), citizen_id="ES-3")  # same phone, another citizen
    blocked_changes = [c for c in deliver(settings, blocked) if c.notification_id == blocked.id]
    assert blocked_changes[-1].detail == "opted out"
    twilio_post(client, INBOUND, inbound(sms["form"]["To"], "Alta"))
    again = make_request(channels=("sms",))
    assert statuses(deliver(settings, again), again.id)[-1] == ("sent", "sms")
    assert len(providers.twilio_requests()) == 2
