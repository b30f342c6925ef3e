"""Pure delivery decisions: channel choice, outcomes, backoff, unsubscribe tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.notifications import Channel, Status
from services.notifier import flows, tokens
from tests.notifier.factories import make_request

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def test_channels_are_tried_in_the_requests_order():
    plan = flows.plan_delivery(make_request(channels=("email", "sms")), now=NOW)
    assert plan.channels == (Channel.EMAIL, Channel.SMS)
    assert plan.final is None


def test_a_channel_without_contact_is_skipped():
    plan = flows.plan_delivery(make_request(phone=None), now=NOW)
    assert plan.channels == (Channel.EMAIL,)


def test_a_channel_without_content_is_skipped():
    plan = flows.plan_delivery(make_request(sms=None), now=NOW)
    assert plan.channels == (Channel.EMAIL,)


def test_a_citizen_without_any_contact_is_suppressed():
    plan = flows.plan_delivery(make_request(phone=None, email=None), now=NOW)
    assert (plan.channels, plan.final, plan.detail) == ((), Status.SUPPRESSED, "no contact")


def test_contacts_without_content_fail():
    plan = flows.plan_delivery(make_request(channels=("sms",), sms=None), now=NOW)
    assert plan.final is Status.FAILED


def test_an_expired_request_is_suppressed():
    request = make_request(not_after=NOW - timedelta(minutes=1))
    plan = flows.plan_delivery(request, now=NOW)
    assert (plan.final, plan.detail) == (Status.SUPPRESSED, "expired")


def test_repeated_channels_are_tried_once():
    plan = flows.plan_delivery(make_request(channels=("sms", "sms", "email")), now=NOW)
    assert plan.channels == (Channel.SMS, Channel.EMAIL)


def test_first_stops_after_a_sent_channel_and_all_does_not():
    sent = [flows.ChannelResult(Channel.SMS, True, NOW, "SM1")]
    failed = [flows.ChannelResult(Channel.SMS, False, NOW, detail="21211")]
    assert not flows.should_continue(make_request(delivery="first"), sent)
    assert flows.should_continue(make_request(delivery="first"), failed)
    assert flows.should_continue(make_request(delivery="all"), sent)


def test_outcome_is_sent_when_any_channel_sent():
    results = [
        flows.ChannelResult(Channel.SMS, False, NOW, detail="invalid number"),
        flows.ChannelResult(Channel.EMAIL, True, NOW, "msg-1"),
    ]
    outcome = flows.outcome(results)
    assert (outcome.status, outcome.channel) == (Status.SENT, Channel.EMAIL)


def test_outcome_is_failed_with_every_reason():
    results = [
        flows.ChannelResult(Channel.SMS, False, NOW, detail="invalid number"),
        flows.ChannelResult(Channel.EMAIL, False, NOW, detail="bad request"),
    ]
    outcome = flows.outcome(results)
    assert outcome.status is Status.FAILED
    assert outcome.detail == "sms: invalid number; email: bad request"


def test_final_changes_publish_one_sent_per_channel():
    request = make_request(delivery="all")
    outcome = flows.outcome(
        [
            flows.ChannelResult(Channel.SMS, True, NOW, "SM1"),
            flows.ChannelResult(Channel.EMAIL, True, NOW, "m1"),
        ]
    )
    changes = flows.final_changes(request, outcome, at=NOW)
    assert [(c.status, c.channel, c.provider_reference) for c in changes] == [
        (Status.SENT, Channel.SMS, "SM1"),
        (Status.SENT, Channel.EMAIL, "m1"),
    ]
    assert all(c.notification_id == request.id for c in changes)


@pytest.mark.parametrize(
    ("retry", "jitter", "expected"),
    [
        (1, 0.0, 0.0),
        (1, 0.5, 0.25),
        (1, 0.999999, 0.5),
        (2, 0.5, 0.5),
        (3, 0.999999, 2.0),
        (3, 0.25, 0.5),
        (10, 0.999999, 4.0),
        (10, 0.5, 2.0),
    ],
)
def test_backoff_is_full_jitter_under_an_exponential_ceiling_and_the_cap(retry, jitter, expected):
    delay = flows.backoff_delay(retry, base_s=0.5, cap_s=4.0, retry_after=None, jitter=jitter)
    assert delay == pytest.approx(expected, rel=1e-5)


def test_backoff_honours_retry_after_within_the_cap():
    assert flows.backoff_delay(1, base_s=0.5, cap_s=4.0, retry_after=3, jitter=0) == 3
    assert flows.backoff_delay(1, base_s=0.5, cap_s=4.0, retry_after=60, jitter=0) == 4


def test_unsubscribe_headers_follow_rfc_8058():
    headers = flows.unsubscribe_headers("https://avisa.example/", "tok")
    assert headers == {
        "List-Unsubscribe": "<https://avisa.example/unsubscribe/tok>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def test_unsubscribe_tokens_verify_and_cannot_be_forged():
    keys, now = tokens.TokenKeys(b"k" * 32), datetime.now(UTC)
    token = tokens.sign(
        keys, purpose="unsubscribe", subject="ES-12345678Z", detail="email", now=now
    )
    claims = tokens.verify(keys, token, purpose="unsubscribe", max_age=timedelta(days=1), now=now)
    assert (claims.subject, claims.detail) == ("ES-12345678Z", "email")
    forged = tokens.sign(keys, purpose="unsubscribe", subject="ES-1", now=now).split(".")[1]
    for bad in (f"v2.{forged}.{token.split('.')[2]}", "not a token", "v2.!.!"):
        with pytest.raises(tokens.TokenRefused):
            tokens.verify(keys, bad, purpose="unsubscribe", max_age=timedelta(days=1), now=now)
