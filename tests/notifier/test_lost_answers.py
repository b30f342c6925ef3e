"""A provider answer lost after the request went out whole (a read timeout): the provider may
have the message, so calling again could send it twice. Where reconciliation can settle it
(Twilio is asked; SendGrid's events are awaited) the attempt is left `sending` for it, exactly
as after a crash mid-call; elsewhere the call is retried as before."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.notifier.factories import make_request
from tests.notifier.kafkatools import eventually
from tests.notifier.test_citizens import sendgrid_post
from tests.notifier.test_delivery import ADMIN, send, status_changes, statuses
from tests.notifier.test_email_evidence import event
from tests.notifier.test_fallback import attempts, sent_on
from tests.notifier.test_parked_reports import reconciling

TIMING = {"provider_timeout_s": 1.0, "reconcile_after_s": 3.0}
LATE = 1.6  # the fake answers after the client has given up


def tried(client, request):
    """The notification's attempts as (channel, status, error code); none before it exists."""
    found = client.get(f"/v1/notifications/{request.id}", headers=ADMIN)
    if found.status_code != 200:
        return []
    return [(a["channel"], a["status"], a["error_code"]) for a in found.json()["attempts"]]


@pytest.fixture
def notifier(broker, topic_prefix, database_url, providers, tmp_path):
    with reconciling(
        broker, topic_prefix, database_url, providers, tmp_path, **TIMING
    ) as running_notifier:
        yield running_notifier


@pytest.fixture
def awaiting_events(broker, topic_prefix, database_url, providers, tmp_path):
    with reconciling(
        broker,
        topic_prefix,
        database_url,
        providers,
        tmp_path,
        sendgrid_event_wait_s=30,
        **TIMING,
    ) as running_notifier:
        yield running_notifier


@pytest.fixture
def reconciling_rarely(broker, topic_prefix, database_url, providers, tmp_path):
    """Crashed sends reconciled after a minute, in rounds 30 s apart: only the quick round
    for lost answers can settle one in seconds."""
    with reconciling(
        broker,
        topic_prefix,
        database_url,
        providers,
        tmp_path,
        provider_timeout_s=1.0,
        reconcile_after_s=60,
        reconcile_interval_s=30,
    ) as running_notifier:
        yield running_notifier


def test_a_lost_answer_is_settled_within_seconds_not_at_the_crash_pace(
    reconciling_rarely, providers
):
    client, settings = reconciling_rarely
    providers.script(twilio=[{"delay_s": LATE}])
    request = make_request(channels=("sms",))
    send(settings, request)
    eventually(lambda: tried(client, request) == [("sms", "sending", "in-doubt")])
    # Settled about provider_timeout_s + 5 s after the call began, well before a minute.
    changes = status_changes(settings, sent_on("sms"))
    assert statuses(changes, request.id) == [("queued", None), ("sent", "sms")]
    assert len(providers.twilio_requests()) == 1


def test_an_sms_twilio_took_though_its_answer_was_lost_is_not_sent_again(notifier, providers):
    client, settings = notifier
    providers.script(twilio=[{"delay_s": LATE}])  # accepted, answered too late
    request = make_request(channels=("sms",))
    send(settings, request)
    changes = status_changes(settings, sent_on("sms"))
    [accepted] = providers.twilio_requests()
    assert statuses(changes, request.id) == [("queued", None), ("sent", "sms")]
    assert changes[-1].provider_reference == accepted["sid"]  # found at Twilio
    assert attempts(client, request)[1] == [("sms", "sent", None)]


def test_an_sms_twilio_never_took_is_sent_once_after_the_lookup(notifier, providers):
    client, settings = notifier
    providers.script(twilio=[{"delay_s": LATE, "status": 500}])  # timed out, not accepted
    request = make_request(channels=("sms",))
    send(settings, request)
    changes = status_changes(settings, sent_on("sms"))
    assert statuses(changes, request.id) == [("queued", None), ("sent", "sms")]
    assert len(providers.twilio_requests()) == 1
    assert attempts(client, request)[1] == [("sms", "failed", "lost"), ("sms", "sent", None)]


def test_an_email_sendgrid_reports_after_a_lost_answer_is_not_sent_again(
    awaiting_events, providers
):
    client, settings = awaiting_events
    providers.script(sendgrid=[{"delay_s": LATE}])
    request = make_request(channels=("email",))
    send(settings, request)
    [accepted] = eventually(providers.sendgrid_requests)
    eventually(lambda: tried(client, request) == [("email", "sending", "in-doubt")])
    assert sendgrid_post(client, [event(request, accepted["message_id"])]).status_code == 204
    changes = status_changes(settings, sent_on("email"))
    assert statuses(changes, request.id) == [("queued", None), ("sent", "email")]
    assert changes[-1].provider_reference == accepted["message_id"]
    assert len(providers.sendgrid_requests()) == 1
    assert attempts(client, request)[1] == [("email", "sent", None)]


def test_without_awaiting_sendgrids_events_a_lost_email_answer_is_retried(notifier, providers):
    client, settings = notifier
    providers.script(sendgrid=[{"delay_s": LATE, "status": 500}])
    request = make_request(channels=("email",))
    started = datetime.now(UTC)
    send(settings, request)
    changes = status_changes(settings, sent_on("email"))
    assert statuses(changes, request.id) == [("queued", None), ("sent", "email")]
    assert len(providers.sendgrid_requests()) == 1
    _, tried = attempts(client, request)
    assert tried == [("email", "failed", "network"), ("email", "sent", None)]
    assert (changes[-1].at - started).total_seconds() < 3.0  # retried, not reconciled
