"""Provider adapters behind one small protocol, and the choice between real and development."""

from __future__ import annotations

from dataclasses import dataclass

from services.notifier.clients.base import EmailSender, SmsSender
from services.notifier.clients.outbox import OutboxEmail, OutboxSms
from services.notifier.clients.sendgrid import SendGridEmail
from services.notifier.clients.twilio import TwilioSms
from services.notifier.config import Settings


@dataclass(frozen=True, slots=True)
class Senders:
    """One sender per channel."""

    sms: SmsSender
    email: EmailSender


def build_senders(settings: Settings) -> Senders:
    """Twilio and SendGrid when their credentials are set; the outbox files otherwise."""
    return Senders(sms=_sms(settings), email=_email(settings))


def _sms(settings: Settings) -> SmsSender:
    if not settings.twilio_configured:
        return OutboxSms(settings.outbox_dir)
    assert settings.twilio_account_sid and settings.twilio_auth_token
    return TwilioSms(
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token.get_secret_value(),
        from_number=settings.twilio_from_number,
        messaging_service_sid=settings.twilio_messaging_service_sid,
        base_url=settings.twilio_base_url,
        public_url=settings.public_url,
        timeout_s=settings.provider_timeout_s,
        pool_size=settings.send_concurrency,
    )


def _email(settings: Settings) -> EmailSender:
    if not settings.sendgrid_configured:
        return OutboxEmail(settings.outbox_dir)
    assert settings.sendgrid_api_key and settings.sendgrid_from_email
    return SendGridEmail(
        api_key=settings.sendgrid_api_key.get_secret_value(),
        from_email=settings.sendgrid_from_email,
        base_url=settings.sendgrid_base_url,
        timeout_s=settings.provider_timeout_s,
    )
