"""Crash reconciliation: an attempt left `sending` is looked up at Twilio before any resend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from common.db import make_engine, make_sessions
from services.notifier import repository
from services.notifier.clients import Senders
from services.notifier.clients.outbox import OutboxEmail
from services.notifier.config import Settings
from services.notifier.delivery import Deliverer
from services.notifier.main import migrate
from services.notifier.reconcile import Reconciler
from tests.notifier.factories import make_request, sms_body
from tests.notifier.test_clients import twilio


def setup(tmp_path, providers):
    url = f"sqlite:///{tmp_path / 'n.db'}"
    migrate(Settings(database_url=url, env="development"))
    sessions = make_sessions(make_engine(url))
    sms = twilio(providers.url)
    deliverer = Deliverer(
        sessions=sessions,
        senders=Senders(sms=sms, email=OutboxEmail(tmp_path)),
        public_url="http://127.0.0.1:8003",
        unsubscribe_secret=b"k",
    )
    reconciler = Reconciler(
        sessions=sessions,
        deliverer=deliverer,
        sms_lookup=sms,
        after_s=30,
        clock=lambda: datetime.now(UTC),
    )
    return sessions, sms, reconciler


def crashed_mid_call(sessions, request):
    """What a SIGKILL between the provider call and its record leaves behind."""
    with sessions.begin() as session:
        repository.insert_notification(session=session, request=request, now=datetime.now(UTC))
        repository.add_attempt(
            session=session,
            notification_id=request.id,
            channel="sms",
            provider="twilio",
            now=datetime.now(UTC) - timedelta(minutes=1),
        )


def test_a_message_twilio_already_has_is_not_sent_again(tmp_path, providers):
    sessions, sms, reconciler = setup(tmp_path, providers)
    request = make_request(channels=("sms",))
    crashed_mid_call(sessions, request)
    receipt = sms.send(to="+34600111222", body=sms_body(request), notification_id=request.id)
    results = reconciler.run_once()
    assert [(c.status.value, c.provider_reference) for c in results[request.id].changes] == [
        ("sent", receipt.reference)
    ]
    assert len(providers.twilio_requests()) == 1


def test_a_message_twilio_never_got_is_sent_once(tmp_path, providers):
    sessions, _sms, reconciler = setup(tmp_path, providers)
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
