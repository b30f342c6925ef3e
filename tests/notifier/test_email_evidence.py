"""An email whose send was cut by a crash: SendGrid cannot be asked whether it got it, but its
event webhook tells. With `AVISA_SENDGRID_EVENT_WAIT_S` set, an event about the email means it
went (not sent again); none within the wait means it never left (sent once more)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.notifier import repository
from services.notifier.config import Settings
from services.notifier.reports import parked
from tests.notifier.factories import make_request
from tests.notifier.kafkatools import eventually
from tests.notifier.test_citizens import PUBLIC_KEY, sendgrid_post
from tests.notifier.test_clients import sendgrid
from tests.notifier.test_delivery import status_changes, statuses
from tests.notifier.test_fallback import attempts, sent_on
from tests.notifier.test_parked_reports import parked_count, reconciling

WAIT_S = 5.0
AFTER_S = 2.5  # reconciled as crashed after this; the provider timeout is shorter


@pytest.fixture
def notifier(broker, topic_prefix, database_url, providers, tmp_path):
    with reconciling(
        broker,
        topic_prefix,
        database_url,
        providers,
        tmp_path,
        sendgrid_event_wait_s=WAIT_S,
        reconcile_after_s=AFTER_S,
        provider_timeout_s=2.0,
    ) as running_notifier:
        yield running_notifier


def email_attempt(session, request, *, began: datetime):
    """A notification and its email attempt `sending` since `began`: what a SIGKILL between
    recording the attempt and recording SendGrid's answer leaves behind."""
    repository.insert_notification(session=session, request=request, now=began)
    return repository.add_attempt(
        session=session,
        notification_id=request.id,
        channel="email",
        provider="sendgrid",
        now=began,
    )


def crashed_mid_email(client, request, *, began: datetime) -> None:
    with client.app.state.sessions.begin() as session:
        email_attempt(session, request, began=began)


def event(request, message_id: str, kind: str = "processed", n: int = 1) -> dict[str, object]:
    """A SendGrid event as its webhook posts it: custom args at the top level."""
    return {
        "email": "ana@example.es",
        "timestamp": int(datetime.now(UTC).timestamp()),
        "event": kind,
        "sg_event_id": f"ev-{request.id}-{kind}-{n}",
        "sg_message_id": f"{message_id}.filterdrecv-1-2",
        "notification_id": request.id,
    }


def email_sent_by_sendgrid(providers, request) -> str:
    """The email reaches SendGrid (the call our crashed process made); its X-Message-Id."""
    receipt = sendgrid(providers.url).send(
        to="ana@example.es",
        subject="Asunto",
        text="Texto",
        html="<p>Texto</p>",
        notification_id=request.id,
        headers={},
    )
    assert receipt.reference
    return receipt.reference


def test_an_email_sendgrid_reported_is_taken_as_sent_with_its_message_id(notifier, providers):
    client, settings = notifier
    request = make_request(channels=("email",))
    began = datetime.now(UTC)
    crashed_mid_email(client, request, began=began)
    message_id = email_sent_by_sendgrid(providers, request)
    assert sendgrid_post(client, [event(request, message_id)]).status_code == 204
    changes = status_changes(settings, sent_on("email"))
    assert statuses(changes, request.id) == [("sent", "email")]
    assert changes[-1].provider_reference == message_id
    assert attempts(client, request)[1] == [("email", "sent", None)]
    assert len(providers.sendgrid_requests()) == 1  # not sent again
    eventually(lambda: parked_count(client) == 0)  # the evidence is spent


def test_an_email_sendgrid_never_reported_is_sent_again_after_the_wait(notifier, providers):
    client, settings = notifier
    request = make_request(channels=("email",))
    began = datetime.now(UTC)
    crashed_mid_email(client, request, began=began)
    # Stale for the reconciler, but within the wait: it stays unresolved, nothing resent.
    eventually(lambda: datetime.now(UTC) - began > timedelta(seconds=AFTER_S + 1), timeout_s=9)
    assert attempts(client, request)[1] == [("email", "sending", None)]
    assert providers.sendgrid_requests() == []
    changes = status_changes(settings, sent_on("email"))
    assert datetime.now(UTC) - began >= timedelta(seconds=WAIT_S)
    assert statuses(changes, request.id) == [("sent", "email")]
    [resent] = providers.sendgrid_requests()
    assert resent["body"]["personalizations"][0]["custom_args"]["notification_id"] == request.id
    _, tried = attempts(client, request)
    assert tried == [("email", "failed", "lost"), ("email", "sent", None)]


def test_evidence_naming_another_attempts_message_is_no_evidence(notifier, providers):
    client, settings = notifier
    request, earlier = make_request(channels=("email",)), make_request(channels=("email",))
    taken = email_sent_by_sendgrid(providers, earlier)
    began = datetime.now(UTC) - timedelta(minutes=1)  # the wait is over
    with client.app.state.sessions.begin() as session:
        # Ours crashed mid-call, and an event naming a message id was parked for it...
        ours = email_attempt(session, request, began=began)
        parked.park(session=session, attempt=ours, reference=taken, report=None, now=began)
        # ...but that message is another notification's, on record as its own.
        other = email_attempt(session, earlier, began=began)
        repository.finish_attempt(
            session=session, attempt_id=other.id, sent=True, now=began, reference=taken
        )
    changes = status_changes(settings, sent_on("email"))
    assert statuses(changes, request.id) == [("sent", "email")]
    assert attempts(client, request)[1] == [("email", "failed", "lost"), ("email", "sent", None)]
    assert len(providers.sendgrid_requests()) == 2  # ours was sent: the message was not ours


def test_the_wait_needs_the_signed_event_webhook():
    with pytest.raises(ValidationError, match="SENDGRID_WEBHOOK_PUBLIC_KEY"):
        Settings(env="development", sendgrid_event_wait_s=600)
    assert (
        Settings(
            env="development", sendgrid_event_wait_s=600, sendgrid_webhook_public_key=PUBLIC_KEY
        ).sendgrid_event_wait_s
        == 600
    )
