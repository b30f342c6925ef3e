"""The send path's bounds and reasons: per-class retry time limits, the provider error table,
and the SMS cap's reason kept when email carries the message. Real SDKs against the fakes, on
SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from common.db import make_engine, make_sessions
from schemas.notifications import Status
from services.notifier import repository
from services.notifier.clients import Senders, errors
from services.notifier.clients.base import PermanentDeliveryError
from services.notifier.config import Settings
from services.notifier.delivery.admission import Defaults
from services.notifier.delivery.journal import Journal
from services.notifier.delivery.requests import Deliverer
from services.notifier.delivery.sending import RetryPolicy
from services.notifier.main import migrate
from services.notifier.tokens import TokenKeys
from tests.notifier.factories import make_request
from tests.notifier.test_clients import sendgrid, twilio


class Clock:
    """A clock that moves only when the deliverer sleeps: elapsed time is exactly the waits."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


class MaxJitter(random.Random):
    """Full jitter drawn at its top: each backoff is its ceiling, so the waits are known."""

    def random(self) -> float:
        return 0.999


def deliverer(database_url, providers, clock, policy, sms_daily_cap=None):
    migrate(Settings(database_url=database_url, env="development"))
    engine = make_engine(database_url)
    sessions = make_sessions(engine)
    built = Deliverer(
        sessions=sessions,
        journal=Journal(engine),
        senders=Senders(sms=twilio(providers.url), email=sendgrid(providers.url)),
        public_url="http://127.0.0.1:8003",
        token_keys=TokenKeys(b"k"),
        policy=policy,
        defaults=Defaults(sms_daily_cap=sms_daily_cap),
        clock=clock,
        sleep=clock.sleep,
        rng=MaxJitter(),
    )
    return built, sessions


def twilio_calls(providers):
    refused = [f for f in providers.failures() if f["provider"] == "twilio"]
    return len(refused) + len(providers.twilio_requests())


def attempts_of(sessions, notification_id):
    with sessions() as session:
        row = repository.get_notification(
            session=session, notification_id=notification_id, with_attempts=True
        )
        return row, [(a.channel, a.status) for a in row.attempts]


POLICY = RetryPolicy(retries=5, base_s=1.0, cap_s=10.0, sms_limit_s=2.5, critical_limit_s=0.5)


def test_retries_stop_at_the_channel_time_limit_and_email_carries_it(database_url, providers):
    clock = Clock()
    send, sessions = deliverer(database_url, providers, clock, POLICY)
    providers.script(twilio=[{"status": 503}] * 6)
    request = make_request(channels=("sms", "email"))
    result = send.process(request)
    # waits of ~1 s then ~2 s: the second would end at ~3 s, past the 2.5 s limit
    assert clock.slept == [pytest.approx(0.999)]
    assert twilio_calls(providers) == 2
    assert [(c.status, c.channel and c.channel.value) for c in result.changes] == [
        (Status.QUEUED, None),
        (Status.SENT, "email"),
    ]
    _row, attempts = attempts_of(sessions, request.id)
    assert attempts == [("sms", "failed"), ("sms", "failed"), ("email", "sent")]


def test_a_critical_notification_has_the_shorter_limit(database_url, providers):
    clock = Clock()
    send, sessions = deliverer(database_url, providers, clock, POLICY)
    providers.script(twilio=[{"status": 503}] * 6)
    request = make_request(channels=("sms", "email")).model_copy(update={"critical": True})
    send.process(request)
    assert clock.slept == []  # the first wait (~1 s) is already past 0.5 s
    assert twilio_calls(providers) == 1
    _row, attempts = attempts_of(sessions, request.id)
    assert attempts == [("sms", "failed"), ("email", "sent")]


def test_a_retry_after_past_the_limit_exhausts_the_channel_without_waiting(database_url, providers):
    clock = Clock()
    send, _sessions = deliverer(database_url, providers, clock, POLICY)
    providers.script(twilio=[{"status": 429, "retry_after": 120}])
    request = make_request(channels=("sms",))
    result = send.process(request)
    assert clock.slept == []
    assert twilio_calls(providers) == 1
    [failed] = [c for c in result.changes if c.status is Status.FAILED]
    assert "time limit 2.5 s" in (failed.detail or "")
    assert result.failed is not None  # the consumer dead-letters it


def test_a_retry_after_within_the_limit_is_waited_in_full(database_url, providers):
    clock = Clock()
    policy = RetryPolicy(retries=3, base_s=0.1, cap_s=1.0, sms_limit_s=30.0)
    send, _sessions = deliverer(database_url, providers, clock, policy)
    providers.script(twilio=[{"status": 429, "retry_after": 5}])
    result = send.process(make_request(channels=("sms",)))
    assert clock.slept == [pytest.approx(5.0)]
    assert [c.status for c in result.changes] == [Status.QUEUED, Status.SENT]


def test_the_cap_reason_reaches_the_row_and_status_when_email_goes(database_url, providers):
    clock = Clock()
    send, sessions = deliverer(database_url, providers, clock, POLICY, sms_daily_cap=0)
    request = make_request(channels=("sms", "email"))
    result = send.process(request)
    [sent] = [c for c in result.changes if c.status is Status.SENT]
    assert sent.channel is not None and sent.channel.value == "email"
    assert sent.detail == "sms skipped: daily SMS cap reached (0 SMS a day)"
    row, attempts = attempts_of(sessions, request.id)
    assert (row.status, row.detail) == ("sent", sent.detail)
    assert attempts == [("email", "sent")]
    assert twilio_calls(providers) == 0
    # a redelivery, status.v1 never having acknowledged it, republishes the same detail
    replayed = send.process(request)
    assert [(c.status, c.detail) for c in replayed.changes if c.status is Status.SENT] == [
        (Status.SENT, sent.detail)
    ]
    assert twilio_calls(providers) == 0 and len(providers.sendgrid_requests()) == 1


def test_the_cap_reason_is_kept_beside_the_email_failure(database_url, providers):
    clock = Clock()
    send, _sessions = deliverer(database_url, providers, clock, POLICY, sms_daily_cap=0)
    providers.script(sendgrid=[{"status": 400, "message": "invalid"}])
    result = send.process(make_request(channels=("sms", "email")))
    [failed] = [c for c in result.changes if c.status is Status.FAILED]
    assert failed.detail is not None
    assert failed.detail.startswith("email: sendgrid 400")
    assert failed.detail.endswith("sms skipped: daily SMS cap reached (0 SMS a day)")


def test_an_unknown_twilio_4xx_code_is_permanent_as_the_table_says(providers):
    providers.script(twilio=[{"status": 400, "code": 21999}])
    with pytest.raises(PermanentDeliveryError) as raised:
        twilio(providers.url).send(to="+34600111222", body="Hola", notification_id="n-1")
    assert raised.value.code == "21999"
    assert errors.twilio_class(21999, 400) is errors.ErrorClass.PERMANENT


def test_the_table_classes_the_known_codes():
    assert errors.twilio_class(21610, 400) is errors.ErrorClass.OPT_OUT
    assert errors.twilio_class(21211, 400) is errors.ErrorClass.PERMANENT
    assert errors.twilio_class(20500, 503) is errors.ErrorClass.RETRYABLE
    assert errors.twilio_class(None, None) is errors.ErrorClass.RETRYABLE
    assert errors.sendgrid_class(400) is errors.ErrorClass.PERMANENT
    assert errors.sendgrid_class(429) is errors.ErrorClass.RETRYABLE
    assert errors.sendgrid_class(502) is errors.ErrorClass.RETRYABLE
    assert errors.is_twilio_opt_out("21610") and not errors.is_twilio_opt_out("21211")
    assert not errors.is_twilio_opt_out("http-400") and not errors.is_twilio_opt_out(None)
