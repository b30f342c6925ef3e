"""The provider adapters keep their HTTP connections alive across sends, and fall back to the
SDK's requests client when the environment names a proxy."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from avisa.broker import free_port
from services.notifier.clients.base import RetryableDeliveryError
from services.notifier.clients.pool import KeptAlive, TransportError
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
        api_key="SG.key", from_email="avisa@example.es", base_url=url, timeout_s=2.0
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
    assert sms._http._pool.connections_opened == 1


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
    assert email._client.client._pool.connections_opened == 1


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


class _ClosingServer:
    """Answers each request on a connection, then closes that connection without saying so
    (as a server's idle timeout does); counts the requests it received."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.requests = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with connection:
                received = b""
                while b"\r\n\r\n" not in received:
                    received += connection.recv(4096)
                self.requests += 1
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 2\r\n\r\n{}"
                )

    def close(self) -> None:
        self._listener.close()


def test_a_connection_the_server_closed_is_replaced_before_the_request_goes():
    server = _ClosingServer()
    transport = KeptAlive()
    try:
        for _ in range(3):
            answer = transport.request("GET", f"{server.url}/x", body=None, headers={}, timeout=2)
            assert (answer.status, answer.data) == (200, b"{}")
            time.sleep(0.05)  # the server's close reaches us while the connection is idle
    finally:
        server.close()
    assert server.requests == 3  # each sent once, none on a dead connection
    assert transport.connections_opened == 3


def test_a_refused_connection_is_a_transport_error():
    transport = KeptAlive()
    with pytest.raises(TransportError):
        transport.request(
            "POST", f"http://127.0.0.1:{free_port()}/x", body=b"{}", headers={}, timeout=2
        )


def test_through_requests_a_lost_answer_is_in_doubt_and_a_refusal_is_not(providers, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    providers.script(twilio=[{"delay_s": 3.0}])  # accepted after the client gave up (2 s)
    sms = twilio(providers.url)
    assert isinstance(sms._http, RequestsHttpClient)
    with pytest.raises(RetryableDeliveryError) as raised:
        sms.send(to="+34600111222", body="Hola", notification_id="n-1")
    assert raised.value.in_doubt
    with pytest.raises(RetryableDeliveryError) as refused:
        twilio(f"http://127.0.0.1:{free_port()}").send(
            to="+34600111222", body="Hola", notification_id="n-1"
        )
    assert not refused.value.in_doubt
