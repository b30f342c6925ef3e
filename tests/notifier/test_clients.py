"""Provider adapters: the outbox files, and the real SDKs against the spec-checked fakes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from sendgrid.helpers.mail import CustomArg, Header, Mail

from avisa.broker import free_port
from services.notifier.clients import build_senders
from services.notifier.clients.base import PermanentDeliveryError, RetryableDeliveryError
from services.notifier.clients.outbox import OutboxEmail, OutboxSms
from services.notifier.clients.sendgrid import SendGridEmail
from services.notifier.clients.twilio import TwilioSms
from services.notifier.config import Settings

AT = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
HEADERS = {
    "List-Unsubscribe": "<http://127.0.0.1:8003/unsubscribe/tok>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def twilio(url, **overrides):
    options = {
        "account_sid": "AC" + "0" * 32,
        "auth_token": "secret",
        "from_number": "+15005550006",
        "base_url": url,
        "public_url": "http://127.0.0.1:8003",
        "timeout_s": 2.0,
    } | overrides
    return TwilioSms(**options)


def sendgrid(url):
    return SendGridEmail(
        api_key="SG.key", from_email="avisa@example.es", base_url=url, timeout_s=2.0
    )


def send_email(sender, to="ana@example.es"):
    return sender.send(
        to=to,
        subject="Asunto",
        text="Texto",
        html="<p>Texto</p>",
        notification_id="n-1",
        headers=HEADERS,
    )


def test_outbox_appends_one_json_line_per_sms(tmp_path):
    sms = OutboxSms(tmp_path / "outbox", clock=lambda: AT)
    sms.send(to="+34600111222", body="Hola", notification_id="n-1")
    receipt = sms.send(to="+34600111333", body="Adiós", notification_id="n-2")
    entries = lines(tmp_path / "outbox" / "sms.jsonl")
    assert [(e["notification_id"], e["to"], e["body"]) for e in entries] == [
        ("n-1", "+34600111222", "Hola"),
        ("n-2", "+34600111333", "Adiós"),
    ]
    assert entries[0]["at"] == AT.isoformat()
    assert receipt.provider == "outbox" and receipt.reference == entries[1]["reference"]


def test_outbox_writes_emails_with_their_headers(tmp_path):
    send_email(OutboxEmail(tmp_path, clock=lambda: AT))
    [entry] = lines(tmp_path / "email.jsonl")
    assert {k: entry[k] for k in ("notification_id", "to", "subject", "text", "html")} == {
        "notification_id": "n-1",
        "to": "ana@example.es",
        "subject": "Asunto",
        "text": "Texto",
        "html": "<p>Texto</p>",
    }
    assert entry["headers"] == HEADERS


def test_without_credentials_the_outbox_is_chosen(tmp_path):
    senders = build_senders(
        Settings(
            env="development",
            outbox_dir=tmp_path,
            twilio_account_sid=None,
            twilio_auth_token=None,
            sendgrid_api_key=None,
            sendgrid_from_email=None,
        )
    )
    assert (senders.sms.provider, senders.email.provider) == ("outbox", "outbox")


def test_with_credentials_the_real_providers_are_chosen(tmp_path):
    senders = build_senders(
        Settings(
            env="development",
            twilio_account_sid="AC1",
            twilio_auth_token="t",
            twilio_messaging_service_sid="MG1",
            sendgrid_api_key="SG.k",
            sendgrid_from_email="avisa@example.es",
        )
    )
    assert (senders.sms.provider, senders.email.provider) == ("twilio", "sendgrid")


def test_a_sid_without_token_or_sender_still_uses_the_outbox():
    senders = build_senders(
        Settings(
            env="development",
            twilio_account_sid="AC1",
            twilio_auth_token=None,
            sendgrid_api_key="SG.k",
            sendgrid_from_email=None,
        )
    )
    assert (senders.sms.provider, senders.email.provider) == ("outbox", "outbox")


def test_twilio_sends_to_from_body_and_status_callback(providers):
    receipt = twilio(providers.url).send(to="+34600111222", body="Hola", notification_id="n-1")
    [request] = providers.twilio_requests()
    form = request["form"]
    assert (form["To"], form["From"], form["Body"]) == ("+34600111222", "+15005550006", "Hola")
    callback = urlsplit(form["StatusCallback"])
    assert callback.path == "/v1/providers/twilio/status"
    assert parse_qs(callback.query) == {"n": ["n-1"]}
    assert receipt.provider == "twilio" and receipt.reference == request["sid"]


def test_twilio_can_send_through_a_messaging_service(providers):
    twilio(providers.url, from_number=None, messaging_service_sid="MG" + "1" * 32).send(
        to="+34600111222", body="Hola", notification_id="n-1"
    )
    [request] = providers.twilio_requests()
    assert request["form"]["MessagingServiceSid"] == "MG" + "1" * 32
    assert "From" not in request["form"]


def test_twilio_invalid_number_is_permanent(providers):
    providers.script(twilio=[{"status": 400, "code": 21211}])
    with pytest.raises(PermanentDeliveryError) as raised:
        twilio(providers.url).send(to="+34600111222", body="Hola", notification_id="n-1")
    assert raised.value.code == "21211"
    assert raised.value.__cause__ is not None


def test_twilio_rate_limit_is_retryable_with_retry_after(providers):
    providers.script(twilio=[{"status": 429, "retry_after": 7}])
    with pytest.raises(RetryableDeliveryError) as raised:
        twilio(providers.url).send(to="+34600111222", body="Hola", notification_id="n-1")
    assert raised.value.retry_after == 7


def test_twilio_server_errors_are_retryable(providers):
    providers.script(twilio=[{"status": 503}])
    with pytest.raises(RetryableDeliveryError):
        twilio(providers.url).send(to="+34600111222", body="Hola", notification_id="n-1")


def test_twilio_unreachable_is_retryable():
    with pytest.raises(RetryableDeliveryError) as raised:
        twilio(f"http://127.0.0.1:{free_port()}").send(
            to="+34600111222", body="Hola", notification_id="n-1"
        )
    assert raised.value.code == "network"


def test_sendgrid_sends_a_spec_valid_mail_with_unsubscribe_headers(providers):
    receipt = send_email(sendgrid(providers.url))
    [request] = providers.sendgrid_requests()
    body = request["body"]
    assert body["from"]["email"] == "avisa@example.es"
    assert body["personalizations"][0]["to"] == [{"email": "ana@example.es"}]
    assert body["personalizations"][0]["custom_args"] == {"notification_id": "n-1"}
    assert body["subject"] == "Asunto"
    assert body["content"] == [
        {"type": "text/plain", "value": "Texto"},
        {"type": "text/html", "value": "<p>Texto</p>"},
    ]
    assert body["headers"] == HEADERS
    assert receipt.reference == request["message_id"]


@pytest.mark.parametrize(
    ("sender", "to", "headers"),
    [
        ("avisa@example.es", "ana@example.es", HEADERS),
        ("Avisa Ayuntamiento <avisa@example.es>", "Ana Ruiz <ana@example.es>", {}),
        ("avisa@example.es", "a.b+c_d%e-f@mail-1.example.es", HEADERS),
        ("avisa@example.es", '"Ruiz, Ana" <ana@example.es>', HEADERS),
        ("avisa@example.es", "  ana@example.es ", HEADERS),
    ],
)
def test_sendgrid_sends_the_body_the_sdk_mail_helper_builds(providers, sender, to, headers):
    SendGridEmail(api_key="SG.key", from_email=sender, base_url=providers.url).send(
        to=to,
        subject="Asunto",
        text="Texto",
        html="<p>Texto</p>",
        notification_id="n-1",
        headers=headers,
    )
    mail = Mail(
        from_email=sender,
        to_emails=to,
        subject="Asunto",
        plain_text_content="Texto",
        html_content="<p>Texto</p>",
    )
    mail.custom_arg = CustomArg("notification_id", "n-1", p=0)
    for name, value in headers.items():
        mail.header = Header(name, value)
    [request] = providers.sendgrid_requests()
    assert request["body"] == mail.get()


def test_sendgrid_bad_request_is_permanent(providers):
    providers.script(sendgrid=[{"status": 400, "message": "bad address"}])
    with pytest.raises(PermanentDeliveryError) as raised:
        send_email(sendgrid(providers.url))
    assert raised.value.code == "http-400" and "bad address" in str(raised.value)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_sendgrid_throttling_and_server_errors_are_retryable(providers, status):
    providers.script(sendgrid=[{"status": status, "retry_after": 2}])
    with pytest.raises(RetryableDeliveryError) as raised:
        send_email(sendgrid(providers.url))
    assert raised.value.retry_after == 2


def test_sendgrid_unreachable_is_retryable():
    with pytest.raises(RetryableDeliveryError):
        send_email(sendgrid(f"http://127.0.0.1:{free_port()}"))


def test_a_slow_twilio_answer_within_the_timeout_is_a_send(providers):
    providers.script(twilio=[{"delay_s": 0.5}])
    receipt = twilio(providers.url).send(to="+34600111222", body="Hola", notification_id="n-1")
    assert [r["sid"] for r in providers.twilio_requests()] == [receipt.reference]


def test_a_twilio_timeout_is_retryable_and_in_doubt(providers):
    providers.script(twilio=[{"delay_s": 3.0, "status": 500}])  # the client gives up at 2 s
    with pytest.raises(RetryableDeliveryError) as raised:
        twilio(providers.url).send(to="+34600111222", body="Hola", notification_id="n-1")
    assert raised.value.code == "network"
    assert raised.value.in_doubt  # the request was sent whole: Twilio may have acted on it


def test_a_sendgrid_timeout_is_retryable_and_in_doubt(providers):
    providers.script(sendgrid=[{"delay_s": 3.0, "status": 500}])
    with pytest.raises(RetryableDeliveryError) as raised:
        send_email(sendgrid(providers.url))
    assert raised.value.code == "network"
    assert raised.value.in_doubt


def test_a_refused_connection_is_not_in_doubt():
    url = f"http://127.0.0.1:{free_port()}"
    for call in (
        lambda: twilio(url).send(to="+34600111222", body="Hola", notification_id="n-1"),
        lambda: send_email(sendgrid(url)),
    ):
        with pytest.raises(RetryableDeliveryError) as raised:
            call()
        assert raised.value.code == "network" and not raised.value.in_doubt


def test_the_fakes_refuse_what_the_specs_refuse(providers):
    with pytest.raises(PermanentDeliveryError) as raised:
        twilio(providers.url).send(to="612345678", body="Hola", notification_id="n-1")
    assert raised.value.code == "21211"
    mail = {"personalizations": [{"to": [{"email": "ana@example.es"}]}], "subject": "s"}
    answer = urllib.request.Request(
        f"{providers.url}/v3/mail/send",
        data=json.dumps(mail).encode(),
        headers={"Authorization": "Bearer SG.key", "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(answer, timeout=5)
    assert refused.value.code == 400
    rejected = providers.state.rejected
    assert rejected["twilio"][0]["errors"] == ["To is not an E.164 phone number"]
    assert any("'from' is a required property" in e for e in rejected["sendgrid"][0]["errors"])
    assert providers.twilio_requests() == []
    assert providers.sendgrid_requests() == []
