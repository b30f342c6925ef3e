"""A provider's 429 pauses every send to it for Retry-After, not just the one retried."""

import pytest

from services.notifier.clients.base import ProviderReceipt, RetryableDeliveryError
from services.notifier.ratelimit import LimitedSms, TokenBucket


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
