"""Settings: providers' own variable names, and production's refusal of development shortcuts."""

from __future__ import annotations

from datetime import time
from typing import Any

import pytest

from common.settings import ConfigurationError
from services.notifier import main
from services.notifier.config import Settings
from services.notifier.models import Preferences
from services.notifier.preferences import recipient
from services.notifier.quiet import QuietHours
from tests.notifier.factories import make_request

REAL_PROVIDERS: dict[str, Any] = {
    "twilio_account_sid": "AC1",
    "twilio_auth_token": "t",
    "twilio_from_number": "+15005550006",
    "sendgrid_api_key": "SG.k",
    "sendgrid_from_email": "avisa@example.es",
}
NIGHT = QuietHours(time(21, 0), time(8, 0))


def test_provider_variables_are_read_without_the_avisa_prefix(monkeypatch, tmp_path):
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC123")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "s3cr3t-value")
    monkeypatch.setenv("TWILIO_BASE_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.key")
    monkeypatch.setenv("AVISA_OUTBOX_DIR", str(tmp_path))
    monkeypatch.setenv("AVISA_ALLOW_DEVELOPMENT_PROVIDERS", "true")
    settings = Settings()
    assert settings.twilio_account_sid == "AC123"
    assert settings.twilio_auth_token is not None
    assert settings.twilio_auth_token.get_secret_value() == "s3cr3t-value"
    assert settings.twilio_base_url == "http://127.0.0.1:1"
    assert settings.sendgrid_api_key is not None
    assert settings.outbox_dir == tmp_path
    assert settings.allow_development_providers is True
    assert "s3cr3t-value" not in repr(settings)


def test_production_refuses_development_providers():
    settings = Settings(
        env="production",
        admin_key="k" * 32,
        token_secret="t" * 32,
        twilio_account_sid=None,
        sendgrid_api_key=None,
        allow_development_providers=False,
    )
    with pytest.raises(ConfigurationError, match="AVISA_ALLOW_DEVELOPMENT_PROVIDERS"):
        settings.check_production_safety()


def test_production_refuses_one_missing_provider():
    settings = Settings(
        env="production",
        admin_key="k" * 32,
        token_secret="t" * 32,
        allow_development_providers=False,
        **(REAL_PROVIDERS | {"sendgrid_api_key": None}),
    )
    with pytest.raises(ConfigurationError, match="email"):
        settings.check_production_safety()


def test_production_accepts_development_providers_when_allowed():
    Settings(
        env="production",
        admin_key="k" * 32,
        token_secret="t" * 32,
        allow_development_providers=True,
        twilio_account_sid=None,
        sendgrid_api_key=None,
    ).check_production_safety()


def test_production_accepts_real_providers():
    Settings(
        env="production",
        admin_key="k" * 32,
        token_secret="t" * 32,
        allow_development_providers=False,
        **REAL_PROVIDERS,
    ).check_production_safety()


def test_production_still_needs_an_admin_key():
    with pytest.raises(ConfigurationError):
        Settings(
            env="production", admin_key=None, allow_development_providers=True, **REAL_PROVIDERS
        ).check_production_safety()


def test_quiet_hours_default_to_21_to_8_and_the_sms_cap_to_three(monkeypatch):
    defaults = Settings(env="development")
    assert defaults.default_quiet_hours == QuietHours(time(21, 0), time(8, 0))
    assert defaults.sms_daily_cap == 3
    assert (main.defaults(defaults).quiet, main.defaults(defaults).sms_daily_cap) == (NIGHT, 3)
    monkeypatch.setenv("AVISA_SMS_DAILY_CAP", "5")
    monkeypatch.setenv("AVISA_QUIET_HOURS_DEFAULT", "22:30-07:00")
    configured = Settings(env="development")
    assert configured.sms_daily_cap == 5
    assert configured.default_quiet_hours == QuietHours(time(22, 30), time(7, 0))
    monkeypatch.setenv("AVISA_QUIET_HOURS_DEFAULT", "")
    assert Settings(env="development").default_quiet_hours is None
    with pytest.raises(ValueError):
        Settings(env="development", quiet_hours_default="21-08")


def test_a_citizen_without_quiet_hours_gets_the_default_and_their_own_replace_it():
    request = make_request()
    common = {"default_zone": "Europe/Madrid", "default_locale": "es", "default_quiet": NIGHT}
    assert recipient(request, None, **common).quiet == NIGHT
    own = Preferences(
        citizen_id=request.citizen.id, opt_out=[], quiet_start="23:00", quiet_end="06:30"
    )
    assert recipient(request, own, **common).quiet == QuietHours(time(23, 0), time(6, 30))


def test_an_attempt_is_reconciled_only_after_its_call_has_timed_out(monkeypatch):
    monkeypatch.setenv("AVISA_PROVIDER_TIMEOUT_S", "10")
    monkeypatch.setenv("AVISA_RECONCILE_AFTER_S", "5")
    with pytest.raises(ValueError, match=r"AVISA_RECONCILE_AFTER_S \(5\) must exceed"):
        Settings(env="development")
    monkeypatch.setenv("AVISA_RECONCILE_AFTER_S", "11")
    assert Settings(env="development").reconcile_after_s == 11
