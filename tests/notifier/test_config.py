"""Settings: providers' own variable names, and production's refusal of development shortcuts."""

from __future__ import annotations

from typing import Any

import pytest

from common.settings import ConfigurationError
from services.notifier.config import Settings

REAL_PROVIDERS: dict[str, Any] = {
    "twilio_account_sid": "AC1",
    "twilio_auth_token": "t",
    "twilio_from_number": "+15005550006",
    "sendgrid_api_key": "SG.k",
    "sendgrid_from_email": "avisa@example.es",
}


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
        allow_development_providers=False,
        **(REAL_PROVIDERS | {"sendgrid_api_key": None}),
    )
    with pytest.raises(ConfigurationError, match="email"):
        settings.check_production_safety()


def test_production_accepts_development_providers_when_allowed():
    Settings(
        env="production",
        admin_key="k" * 32,
        allow_development_providers=True,
        twilio_account_sid=None,
        sendgrid_api_key=None,
    ).check_production_safety()


def test_production_accepts_real_providers():
    Settings(
        env="production", admin_key="k" * 32, allow_development_providers=False, **REAL_PROVIDERS
    ).check_production_safety()


def test_production_still_needs_an_admin_key():
    with pytest.raises(ConfigurationError):
        Settings(
            env="production", admin_key=None, allow_development_providers=True, **REAL_PROVIDERS
        ).check_production_safety()
