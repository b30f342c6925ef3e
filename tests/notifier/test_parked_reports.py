"""Reports about a send still being recorded are parked, answered 2xx, and applied once the send
is resolved - by crash reconciliation or by the send finishing - never lost (Twilio does not
retry a status callback we fail)."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from common.db import make_engine, make_sessions
from schemas.notifications import Status
from services.notifier import repository
from services.notifier.config import Settings
from services.notifier.main import migrate
from services.notifier.models import Attempt, ParkedReport
from services.notifier.reports import parked
from services.notifier.reports.apply import Report, WebhookContext
from services.notifier.reports.parked import ParkedReports
from tests.notifier.factories import make_request, sms_body
from tests.notifier.kafkatools import eventually
from tests.notifier.test_citizens import PUBLIC_KEY, sendgrid_post, twilio_post
from tests.notifier.test_clients import twilio
from tests.notifier.test_delivery import TWILIO, make_settings, running, status_changes, statuses
from tests.notifier.test_fallback import attempts, sent_on


@contextlib.contextmanager
def reconciling(broker, topic_prefix, database_url, providers, tmp_path, **overrides):
    """The notifier with both fakes, signed webhooks, reconciliation every 0.2 s and a short
    bound before a report about a send still `sending` is parked."""
    settings = make_settings(
        broker,
        topic_prefix,
        database_url,
        tmp_path,
        twilio_base_url=providers.url,
        sendgrid_base_url=providers.url,
        sendgrid_webhook_public_key=PUBLIC_KEY,
        **(TWILIO | {"reconcile_interval_s": 0.2} | overrides),
    )
    with running(settings) as client:
        state = client.app.state  # type: ignore[attr-defined]
        state.webhooks = replace(state.webhooks, settle_timeout_s=0.2)
        yield client, settings


@pytest.fixture
def notifier(broker, topic_prefix, database_url, providers, tmp_path):
    with reconciling(
        broker, topic_prefix, database_url, providers, tmp_path, reconcile_after_s=30
    ) as running_notifier:
        yield running_notifier


def crashed_mid_sms(client, request):
    """What a SIGKILL during the Twilio call leaves: the notification `queued`, its attempt
    `sending` (recent, so the reconciler leaves it alone until `stale`)."""
    sessions = client.app.state.sessions
    with sessions.begin() as session:
        repository.insert_notification(session=session, request=request, now=datetime.now(UTC))
        return repository.add_attempt(
            session=session,
            notification_id=request.id,
            channel="sms",
            provider="twilio",
            now=datetime.now(UTC),
        ).id


def stale(client, attempt_id):
    """Let reconciliation take the crashed attempt (older than AVISA_RECONCILE_AFTER_S)."""
    with client.app.state.sessions.begin() as session:
        session.execute(
            update(Attempt)
            .where(Attempt.id == attempt_id)
            .values(at=datetime.now(UTC) - timedelta(minutes=1))
        )


def parked_count(client):
    with client.app.state.sessions() as session:
        return session.scalar(select(func.count()).select_from(ParkedReport))


def report(client, request, sid, status, code=""):
    params = {"MessageSid": sid, "MessageStatus": status, "ErrorCode": code, "To": "+34600111222"}
    return twilio_post(client, f"/v1/providers/twilio/status?n={request.id}", params)


def test_a_delivered_report_for_a_crashed_send_is_parked_then_applied(notifier, providers):
    client, settings = notifier
    request = make_request(channels=("sms",))
    attempt_id = crashed_mid_sms(client, request)
    receipt = twilio(providers.url).send(
        to="+34600111222", body=sms_body(request), notification_id=request.id
    )
    assert report(client, request, receipt.reference, "delivered").status_code == 204
    assert report(client, request, receipt.reference, "delivered").status_code == 204  # replay
    assert parked_count(client) == 1
    assert attempts(client, request)[1] == [("sms", "sending", None)]
    stale(client, attempt_id)
    changes = status_changes(settings, lambda cs: ("delivered", "sms") in statuses(cs, request.id))
    assert statuses(changes, request.id) == [("sent", "sms"), ("delivered", "sms")]
    assert changes[-1].provider_reference == receipt.reference
    shown, tried = attempts(client, request)
    assert shown["status"] == "delivered" and tried == [("sms", "delivered", None)]
    assert parked_count(client) == 0
    assert len(providers.twilio_requests()) == 1  # found at Twilio: not sent again


def test_an_undelivered_report_for_a_crashed_send_falls_back_to_email(notifier, providers):
    client, settings = notifier
    request = make_request(channels=("sms", "email"), delivery="first")
    attempt_id = crashed_mid_sms(client, request)
    receipt = twilio(providers.url).send(
        to="+34600111222", body=sms_body(request), notification_id=request.id
    )
    response = report(client, request, receipt.reference, "undelivered", "30003")
    assert response.status_code == 204 and parked_count(client) == 1
    stale(client, attempt_id)
    changes = status_changes(settings, sent_on("email"))
    assert statuses(changes, request.id) == [
        ("sent", "sms"),
        ("queued", "sms"),
        ("sent", "email"),
    ]
    assert "falling back to email" in (changes[1].detail or "")
    assert len(providers.sendgrid_requests()) == 1 and len(providers.twilio_requests()) == 1
    assert attempts(client, request)[1] == [("sms", "failed", "30003"), ("email", "sent", None)]
    assert parked_count(client) == 0


def test_a_report_parked_for_a_send_that_never_reached_twilio_is_dropped(
    notifier, providers, caplog
):
    client, _settings = notifier
    request = make_request(channels=("sms",))
    attempt_id = crashed_mid_sms(client, request)
    assert report(client, request, "SM" + "f" * 32, "delivered").status_code == 204
    assert parked_count(client) == 1
    stale(client, attempt_id)
    eventually(lambda: parked_count(client) == 0)
    eventually(lambda: attempts(client, request)[0]["status"] == "sent")
    shown, tried = attempts(client, request)
    assert shown["status"] == "sent"  # not `delivered`: the report was about no message of ours
    assert tried == [("sms", "failed", "lost"), ("sms", "sent", None)]
    assert len(providers.twilio_requests()) == 1  # sent once, by the resume
    assert "parked provider report dropped" in caplog.text


def test_a_sendgrid_bounce_for_an_email_being_recorded_falls_back_once_it_is(notifier, providers):
    client, settings = notifier
    request = make_request(channels=("email", "sms"), delivery="first")
    with client.app.state.sessions.begin() as session:
        repository.insert_notification(session=session, request=request, now=datetime.now(UTC))
        attempt_id = repository.add_attempt(
            session=session,
            notification_id=request.id,
            channel="email",
            provider="sendgrid",
            now=datetime.now(UTC),
        ).id
    event = {
        "sg_event_id": "ev-parked-bounce",
        "event": "bounce",
        "sg_message_id": "msg-parked.filter0001",
        "notification_id": request.id,
        "status": "5.1.1",
        "reason": "550 mailbox unavailable",
    }
    assert sendgrid_post(client, [event]).status_code == 204
    assert sendgrid_post(client, [event]).status_code == 204  # a replay parks nothing more
    assert parked_count(client) == 1
    # The send finishes normally (`sent`, its X-Message-Id) and delivery records `sent`.
    with client.app.state.sessions.begin() as session:
        repository.finish_attempt(
            session=session,
            attempt_id=attempt_id,
            sent=True,
            now=datetime.now(UTC),
            reference="msg-parked",
        )
        repository.set_status(
            session=session,
            notification_id=request.id,
            status=Status.SENT,
            now=datetime.now(UTC),
            channel="email",
        )
        repository.mark_published(session=session, notification_ids=[request.id])
    changes = status_changes(settings, sent_on("sms"))
    assert statuses(changes, request.id) == [("queued", "email"), ("sent", "sms")]
    assert attempts(client, request)[1] == [("email", "failed", "5.1.1"), ("sms", "sent", None)]
    assert parked_count(client) == 0


def test_reports_parked_for_a_week_are_purged(database_url, tmp_path):
    migrate(Settings(database_url=database_url, env="development"))
    sessions = make_sessions(make_engine(database_url))
    now = datetime.now(UTC)
    request = make_request(channels=("sms",))
    with sessions.begin() as session:
        repository.insert_notification(session=session, request=request, now=now)
        attempt = repository.add_attempt(
            session=session, notification_id=request.id, channel="sms", provider="twilio", now=now
        )
        for days in (8, 1):
            parked.park(
                session=session,
                attempt=attempt,
                reference=f"SM{days}",
                report=Report(delivered=True),
                now=now - timedelta(days=days),
            )
    context = WebhookContext(
        sessions=sessions,
        producer=None,  # type: ignore[arg-type]  # nothing is published by a purge
        topics=Settings().topics,
        public_url="http://127.0.0.1:8003",
        clock=lambda: now,
        twilio_auth_token=None,
        sendgrid_public_key=None,
    )
    assert ParkedReports(context).tick() == 0  # the attempt is still `sending`
    with sessions() as session:
        assert list(session.scalars(select(ParkedReport.reference))) == ["SM1"]
