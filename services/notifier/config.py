"""The notifier's settings: the common ones plus providers and delivery (CONTRACT.md)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator

from common.settings import CommonSettings, ConfigurationError
from services.notifier.quiet import QuietHours, parse_window
from services.notifier.tokens import TokenKeys

MIN_TOKEN_SECRET = 32  # characters, in production


def _provider(name: str) -> AliasChoices:
    """Providers' variables carry no `AVISA_` prefix; tests may still pass the field name."""
    return AliasChoices(name.lower(), name)


class Settings(CommonSettings):
    """Environment variables of the notifier: `AVISA_*` plus the providers' own names."""

    twilio_account_sid: str | None = Field(None, validation_alias=_provider("TWILIO_ACCOUNT_SID"))
    twilio_auth_token: SecretStr | None = Field(
        None, validation_alias=_provider("TWILIO_AUTH_TOKEN")
    )
    twilio_from_number: str | None = Field(None, validation_alias=_provider("TWILIO_FROM_NUMBER"))
    twilio_messaging_service_sid: str | None = Field(
        None, validation_alias=_provider("TWILIO_MESSAGING_SERVICE_SID")
    )
    twilio_base_url: str | None = Field(None, validation_alias=_provider("TWILIO_BASE_URL"))
    sendgrid_api_key: SecretStr | None = Field(None, validation_alias=_provider("SENDGRID_API_KEY"))
    sendgrid_from_email: str | None = Field(None, validation_alias=_provider("SENDGRID_FROM_EMAIL"))
    sendgrid_base_url: str | None = Field(None, validation_alias=_provider("SENDGRID_BASE_URL"))
    sendgrid_webhook_public_key: str | None = Field(
        None, validation_alias=_provider("SENDGRID_WEBHOOK_PUBLIC_KEY")
    )

    # A signed SendGrid event webhook whose timestamp is further than this from now is refused.
    sendgrid_webhook_tolerance_s: float = Field(600.0, gt=0)

    # Signs the links we send citizens (one-click unsubscribe): required in production; in
    # development derived from the admin key. The previous secret still verifies (rotation).
    token_secret: SecretStr | None = None
    token_secret_previous: SecretStr | None = None
    unsubscribe_token_days: float = Field(180.0, gt=0)
    # How long a citizen's preference page link works (`AVISA_PREFERENCES_TOKEN_DAYS`); every
    # email brings a fresh one.
    preferences_token_days: float = Field(90.0, gt=0)
    # Requests a preference page link may make per minute (GET and POST) before a 429 page.
    preferences_rate_per_minute: int = Field(30, gt=0)
    # Until then, unsubscribe links of the first scheme (keyed from the admin key) still work.
    token_legacy_until: datetime | None = None

    outbox_dir: Path = Path("var/outbox")
    allow_development_providers: bool = False

    provider_timeout_s: float = 10.0
    delivery_retries: int = Field(3, ge=0, le=10)
    delivery_backoff_s: float = Field(0.5, ge=0)
    delivery_max_delay_s: float = Field(10.0, ge=0)
    # Time limits of one channel of one notification, calls and waits included: past them the
    # channel is exhausted. Critical notifications get the shorter of theirs and the critical one.
    delivery_sms_time_limit_s: float = Field(30.0, gt=0)
    delivery_email_time_limit_s: float = Field(30.0, gt=0)
    delivery_critical_time_limit_s: float = Field(15.0, gt=0)
    # Enough in flight to keep the send pool busy; small enough that a batch stuck in retries
    # (4 attempts, up to 10 s apart) still ends well inside max_poll_interval_ms (300 s).
    consumer_max_poll_records: int = Field(32, ge=1)

    sms_daily_cap: int = Field(3, ge=0)
    quiet_hours_default: str = "21:00-08:00"
    send_concurrency: int = Field(8, ge=1, le=256)
    sms_rate_per_s: float = Field(10.0, gt=0)
    email_rate_per_s: float = Field(10.0, gt=0)
    scheduler_interval_s: float = Field(1.0, gt=0)
    reconcile_after_s: float = Field(60.0, ge=0)
    reconcile_interval_s: float = Field(30.0, gt=0)
    # Set: an email whose send was cut by a crash is taken as sent only if a SendGrid event
    # about it arrives within this many seconds of the attempt, else sent again (reconcile.py).
    sendgrid_event_wait_s: float | None = Field(None, gt=0)

    # Content retention: texts and addresses of notifications final for longer than this are
    # purged (`AVISA_CONTENT_RETENTION_DAYS`, shared with the other services).
    content_retention_days: float = Field(7.0, ge=0)
    purge_interval_s: float = Field(600.0, gt=0)
    purge_batch: int = Field(500, ge=1)
    citizen_records_interval_s: float = Field(5.0, gt=0)

    @field_validator("quiet_hours_default")
    @classmethod
    def _quiet_hours(cls, value: str) -> str:
        parse_window(value)
        return value

    @property
    def default_quiet_hours(self) -> QuietHours | None:
        """The window used when a citizen has none; None when `AVISA_QUIET_HOURS_DEFAULT=""`."""
        return parse_window(self.quiet_hours_default)

    def token_keys(self) -> TokenKeys:
        """The keys of citizens' links: `AVISA_TOKEN_SECRET` (and the previous one), else in
        development one derived from the admin key (refused in production)."""
        previous = (
            self.token_secret_previous.get_secret_value() if self.token_secret_previous else None
        )
        if self.token_secret is not None and self.token_secret.get_secret_value():
            return TokenKeys.of(self.token_secret.get_secret_value(), previous)
        if not self.development:
            raise ConfigurationError("AVISA_TOKEN_SECRET is required outside development mode")
        derived = hmac.new(
            self.effective_admin_key().encode(), b"avisa-development-tokens", hashlib.sha256
        ).hexdigest()
        return TokenKeys.of(derived, previous)

    @property
    def twilio_configured(self) -> bool:
        """Both credentials and a sender: SMS go through Twilio."""
        return bool(
            self.twilio_account_sid
            and self.twilio_auth_token
            and self.twilio_auth_token.get_secret_value()
            and (self.twilio_from_number or self.twilio_messaging_service_sid)
        )

    @property
    def sendgrid_configured(self) -> bool:
        """An API key and a sender address: email goes through SendGrid."""
        return bool(
            self.sendgrid_api_key
            and self.sendgrid_api_key.get_secret_value()
            and self.sendgrid_from_email
        )

    @model_validator(mode="after")
    def _reconcile_after_the_call(self) -> Settings:
        # Any replica's reconciler takes an attempt `sending` for longer than this as cut by a
        # crash: a call still under way must have timed out by then, or it is sent twice.
        if self.reconcile_after_s <= self.provider_timeout_s:
            raise ValueError(
                f"AVISA_RECONCILE_AFTER_S ({self.reconcile_after_s:g}) must exceed "
                f"AVISA_PROVIDER_TIMEOUT_S ({self.provider_timeout_s:g}): an attempt is "
                "reconciled as crashed only once its call has surely ended"
            )
        return self

    @model_validator(mode="after")
    def _evidence_needs_the_webhook(self) -> Settings:
        if self.sendgrid_event_wait_s is not None and not self.sendgrid_webhook_public_key:
            raise ValueError(
                "AVISA_SENDGRID_EVENT_WAIT_S needs SENDGRID_WEBHOOK_PUBLIC_KEY: the wait is for "
                "SendGrid's signed event webhook"
            )
        return self

    def check_production_safety(self) -> None:
        """Refuse production with development keys, or with development providers unless allowed."""
        super().check_production_safety()
        if self.development:
            return
        keys = self.token_keys()
        if len(keys.current) < MIN_TOKEN_SECRET:
            raise ConfigurationError(
                f"AVISA_TOKEN_SECRET must have at least {MIN_TOKEN_SECRET} characters"
            )
        if self.allow_development_providers:
            return
        missing = [
            name
            for name, ready in (
                ("SMS (TWILIO_*)", self.twilio_configured),
                ("email (SENDGRID_*)", self.sendgrid_configured),
            )
            if not ready
        ]
        if missing:
            raise ConfigurationError(
                f"no provider configured for {' and '.join(missing)}: production refuses the "
                "development outbox unless AVISA_ALLOW_DEVELOPMENT_PROVIDERS=true"
            )
