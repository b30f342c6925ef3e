"""Rate limits: a provider's 429 pauses every send to it for Retry-After, not just the one
retried; the wait for a token comes before the attempt is recorded."""

import pytest
from sqlalchemy import func, select

from common.db import make_engine, make_sessions
from services.notifier.clients import Senders
from services.notifier.clients.base import ProviderReceipt, RetryableDeliveryError
from services.notifier.clients.outbox import OutboxEmail, OutboxSms
from services.notifier.config import Settings
from services.notifier.delivery.journal import Journal
from services.notifier.delivery.ratelimit import LimitedEmail, LimitedSms, TokenBucket
from services.notifier.delivery.requests import Deliverer
from services.notifier.main import migrate
from services.notifier.models import Attempt
from services.notifier.tokens import TokenKeys
from tests.notifier.factories import make_request


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Throttled:
    provider = "fake"

    def __init__(self, retry_after: float | None) -> None:
        self.calls = 0
        self.retry_after = retry_after

    def send(self, *, to: str, body: str, notification_id: str) -> ProviderReceipt:
        self.calls += 1
        if self.calls == 1:
            raise RetryableDeliveryError("429", code="http-429", retry_after=self.retry_after)
        return ProviderReceipt(provider="fake", reference=f"r{self.calls}")


def test_a_429_holds_the_next_send_of_any_message_for_retry_after():
    clock = Clock()
    sms = LimitedSms(Throttled(retry_after=2.5), TokenBucket(1000, clock=clock, sleep=clock.sleep))
    with pytest.raises(RetryableDeliveryError):
        sms.send(to="+34600111222", body="a", notification_id="n1")
    sms.send(to="+34600111333", body="b", notification_id="n2")
    assert clock.slept == [pytest.approx(2.5)]


def test_a_429_without_retry_after_pauses_a_second_and_5xx_does_not_pause():
    clock = Clock()
    sms = LimitedSms(Throttled(retry_after=None), TokenBucket(1000, clock=clock, sleep=clock.sleep))
    with pytest.raises(RetryableDeliveryError):
        sms.send(to="+34600111222", body="a", notification_id="n1")
    sms.send(to="+34600111333", body="b", notification_id="n2")
    assert clock.slept == [pytest.approx(1.0)]

    bucket = TokenBucket(1000, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    assert clock.slept == [pytest.approx(1.0)]


def test_a_pause_longer_than_the_callers_limit_is_handed_back_not_slept():
    clock = Clock()
    bucket = TokenBucket(1000, clock=clock, sleep=clock.sleep)
    sms = LimitedSms(Throttled(retry_after=3600), bucket, max_wait_s=30)
    with pytest.raises(RetryableDeliveryError):
        sms.send(to="+34600111222", body="a", notification_id="n1")
    other = Throttled(retry_after=None)
    other.calls = 1  # its next call would succeed
    waiting = LimitedSms(other, bucket, max_wait_s=30)
    with pytest.raises(RetryableDeliveryError) as refused:
        waiting.send(to="+34600111333", body="b", notification_id="n2")
    assert refused.value.retry_after == pytest.approx(3600)
    assert clock.slept == [] and other.calls == 1  # no sleep, no call during the pause

    clock.now += 3590  # ten seconds left: within the limit, so waited out
    assert waiting.send(to="+34600111333", body="b", notification_id="n2").reference == "r2"
    assert clock.slept == [pytest.approx(10)]


def test_a_send_waiting_for_its_rate_limit_has_no_attempt_recorded_yet(tmp_path, database_url):
    """A kill during the wait must not leave a `sending` email attempt: reconciliation would
    take it as sent (SendGrid cannot be asked) and the email would be lost."""
    migrate(Settings(database_url=database_url, env="development"))
    engine = make_engine(database_url)
    sessions = make_sessions(engine)
    sending_during_waits: list[int] = []

    def sleep(seconds: float) -> None:
        with sessions() as session:
            query = select(func.count()).select_from(Attempt).where(Attempt.status == "sending")
            sending_during_waits.append(session.scalar(query) or 0)

    bucket = TokenBucket(1.0, burst=1.0, sleep=sleep)  # the first send is free, the next waits
    deliverer = Deliverer(
        sessions=sessions,
        journal=Journal(engine),
        senders=Senders(sms=OutboxSms(tmp_path), email=LimitedEmail(OutboxEmail(tmp_path), bucket)),
        public_url="http://127.0.0.1:8003",
        token_keys=TokenKeys(b"k"),
    )
    for citizen in ("ES-1", "ES-2"):
        result = deliverer.process(make_request(channels=("email",), citizen_id=citizen))
        assert [c.status.value for c in result.changes][-1] == "sent"
    assert sending_during_waits == [0]
