"""Crash reconciliation: an attempt left `sending` is looked up at Twilio before any resend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from common.db import make_engine, make_sessions
from services.notifier import repository
from services.notifier.clients import Senders
from services.notifier.clients.outbox import OutboxEmail
from services.notifier.config import Settings
from services.notifier.delivery.journal import Journal
from services.notifier.delivery.requests import Deliverer
from services.notifier.main import migrate
from services.notifier.reports import reconcile
from services.notifier.reports.reconcile import Reconciler
from services.notifier.tokens import TokenKeys
from tests.notifier.factories import make_request, sms_body
from tests.notifier.test_clients import twilio


def setup(tmp_path, providers, url, **options):
    migrate(Settings(database_url=url, env="development"))
    engine = make_engine(url)
    sessions = make_sessions(engine)
    sms = twilio(providers.url)
    deliverer = Deliverer(
        sessions=sessions,
        journal=Journal(engine),
        senders=Senders(sms=sms, email=OutboxEmail(tmp_path)),
        public_url="http://127.0.0.1:8003",
        token_keys=TokenKeys(b"k"),
    )
    reconciler = Reconciler(
        sessions=sessions,
        deliverer=deliverer,
        sms_lookup=sms,
        after_s=30,
        clock=lambda: datetime.now(UTC),
        **options,
    )
    return sessions, sms, reconciler


def crashed_mid_call(sessions, request):
    """What a SIGKILL between the provider call and its record leaves behind."""
    with sessions.begin() as session:
        repository.insert_notification(session=session, request=request, now=datetime.now(UTC))
        return repository.add_attempt(
            session=session,
            notification_id=request.id,
            channel="sms",
            provider="twilio",
            now=datetime.now(UTC) - timedelta(minutes=1),
        ).id


def sms_attempts(sessions, notification_id):
    with sessions() as session:
        attempts = repository.get_notification(
            session=session, notification_id=notification_id, with_attempts=True
        ).attempts
        return [(a.status, a.provider_reference) for a in attempts]


def test_a_message_twilio_already_has_is_not_sent_again(tmp_path, providers, database_url):
    sessions, sms, reconciler = setup(tmp_path, providers, database_url)
    request = make_request(channels=("sms",))
    crashed_mid_call(sessions, request)
    receipt = sms.send(to="+34600111222", body=sms_body(request), notification_id=request.id)
    results = reconciler.run_once()
    assert [(c.status.value, c.provider_reference) for c in results[request.id].changes] == [
        ("sent", receipt.reference)
    ]
    assert len(providers.twilio_requests()) == 1


def test_a_message_twilio_never_got_is_sent_once(tmp_path, providers, database_url):
    sessions, _sms, reconciler = setup(tmp_path, providers, database_url)
    request = make_request(channels=("sms",))
    crashed_mid_call(sessions, request)
    results = reconciler.run_once()
    assert [c.status.value for c in results[request.id].changes] == ["sent"]
    assert reconciler.run_once() == {}
    assert len(providers.twilio_requests()) == 1
    with sessions() as session:
        attempts = repository.get_notification(
            session=session, notification_id=request.id, with_attempts=True
        ).attempts
        assert [a.status for a in attempts] == ["failed", "sent"]


def test_another_notification_with_the_same_text_is_not_taken_for_ours(
    tmp_path, providers, database_url
):
    sessions, sms, reconciler = setup(tmp_path, providers, database_url)
    ours, theirs = make_request(channels=("sms",)), make_request(channels=("sms",))
    assert sms_body(ours) == sms_body(theirs)
    crashed_mid_call(sessions, ours)  # ours never reached Twilio
    their_attempt = crashed_mid_call(sessions, theirs)
    receipt = sms.send(to="+34600111222", body=sms_body(theirs), notification_id=theirs.id)
    with sessions.begin() as session:  # theirs went, and its SID is on record
        repository.finish_attempt(
            session=session,
            attempt_id=their_attempt,
            sent=True,
            now=datetime.now(UTC),
            reference=receipt.reference,
        )
    results = reconciler.run_once()
    [sent] = results[ours.id].changes
    assert sent.status.value == "sent" and sent.provider_reference != receipt.reference
    assert len(providers.twilio_requests()) == 2
    assert [status for status, _ in sms_attempts(sessions, ours.id)] == ["failed", "sent"]


def test_two_crashed_sends_of_the_same_text_each_take_their_own_message(
    tmp_path, providers, database_url
):
    sessions, sms, reconciler = setup(tmp_path, providers, database_url)
    first, second = make_request(channels=("sms",)), make_request(channels=("sms",))
    for request in (first, second):
        crashed_mid_call(sessions, request)
        sms.send(to="+34600111222", body=sms_body(request), notification_id=request.id)
    results = reconciler.run_once()
    references = {
        nid: [c.provider_reference for c in result.changes] for nid, result in results.items()
    }
    sids = {message["sid"] for message in providers.twilio_requests()}
    assert len(sids) == 2 and set(references) == {first.id, second.id}
    assert {ref for refs in references.values() for ref in refs} == sids
    assert len(providers.twilio_requests()) == 2  # neither was sent again


def test_emails_awaiting_sendgrid_events_do_not_hide_later_attempts(
    tmp_path, providers, database_url, monkeypatch
):
    monkeypatch.setattr(reconcile, "_PAGE", 3)
    sessions, _sms, waiting = setup(
        tmp_path, providers, database_url, email_evidence_wait=timedelta(hours=1)
    )
    began = datetime.now(UTC) - timedelta(minutes=1)
    emails = [make_request(channels=("email",)) for _ in range(4)]  # more than a page
    with sessions.begin() as session:
        for request in emails:
            repository.insert_notification(session=session, request=request, now=began)
            repository.add_attempt(
                session=session,
                notification_id=request.id,
                channel="email",
                provider="sendgrid",
                now=began,
            )
    sms = make_request(channels=("sms",))
    crashed_mid_call(sessions, sms)  # after them, and never reached Twilio
    results = waiting.run_once()
    assert list(results) == [sms.id]  # looked up and resent; the emails wait for their events
    assert [c.status.value for c in results[sms.id].changes] == ["sent"]
    assert all(sms_attempts(sessions, r.id) == [("sending", None)] for r in emails)
