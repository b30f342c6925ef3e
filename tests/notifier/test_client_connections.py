"""The provider adapters keep their HTTP connections alive across sends, and fall back to the
SDK's requests client when the environment names a proxy."""

from __future__ import annotations

import pytest

from services.notifier.clients.base import RetryableDeliveryError
from services.notifier.clients.sendgrid import SendGridEmail
from services.notifier.clients.twilio import TwilioSms
from services.notifier.clients.twilio_http import PooledHttpClient, RequestsHttpClient

HEADERS = {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def twilio(url: str) -> TwilioSms:
    return TwilioSms(
        account_sid="AC" + "0" * 32,
        auth_token="secret",
        from_number="+15005550006",
        base_url=url,
        public_url="http://127.0.0.1:8003",
        timeout_s=2.0,
        pool_size=4,
    )


def sendgrid(url: str) -> SendGridEmail:
    return SendGridEmail(
        api_key="SG.key", from_email="avisa@example.es", base_url=url, timeout_s=2.0, pool_size=4
    )


def test_twilio_sends_every_message_over_one_kept_alive_connection(providers):
    sms = twilio(providers.url)
    for i in range(3):
        sms.send(to=f"+3460011122{i}", body="Hola", notification_id=f"n-{i}")
    assert [r["form"]["To"] for r in providers.twilio_requests()] == [
        "+34600111220",
        "+34600111221",
        "+34600111222",
    ]
    pool = sms._http._pool.connection_from_url(providers.url)
    assert pool.num_connections == 1


def test_sendgrid_sends_every_email_over_one_kept_alive_connection(providers):
    email = sendgrid(providers.url)
    receipts = [
        email.send(
            to=f"c{i}@example.es",
            subject="Asunto",
            text="Texto",
            html="<p>Texto</p>",
            notification_id=f"n-{i}",
            headers=HEADERS,
        )
        for i in range(3)
    ]
    assert len(providers.sendgrid_requests()) == 3
    assert all(r.reference for r in receipts)
    pool = email._client.client._pool.connection_from_url(providers.url)
    assert pool.num_connections == 1


def test_twilio_reads_retry_after_through_the_pooled_client(providers):
    providers.script(twilio=[{"status": 429, "retry_after": 7}])
    sms = twilio(providers.url)
    assert isinstance(sms._http, PooledHttpClient)
    with pytest.raises(RetryableDeliveryError) as raised:
        sms.send(to="+34600111222", body="Hola", notification_id="n-1")
    assert raised.value.retry_after == 7


def test_with_a_proxy_in_the_environment_twilio_goes_through_requests(providers, monkeypatch):
    # The proxy is never reached: the fakes are on loopback, which NO_PROXY exempts.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    providers.script(twilio=[{"status": 429, "retry_after": 3}])
    sms = twilio(providers.url)
    assert isinstance(sms._http, RequestsHttpClient)
    with pytest.raises(RetryableDeliveryError) as raised:
        sms.send(to="+34600111222", body="Hola", notification_id="n-1")
    assert raised.value.retry_after == 3
    receipt = sms.send(to="+34600111222", body="Hola", notification_id="n-1")
    assert receipt.reference == providers.twilio_requests()[-1]["sid"]
