"""Signed tokens for citizens' links: a key of their own, purpose-scoped, expiring, rotated;
and what the unsubscribe pages make of bad, expired, other-purpose and old-scheme tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from common.settings import ConfigurationError
from services.notifier import tokens
from services.notifier.config import Settings
from tests.notifier import test_citizens
from tests.notifier.test_citizens import (
    preferences,
    unsubscribe_token,
)
from tests.notifier.test_delivery import make_settings, running

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
KEYS = tokens.TokenKeys(b"a" * 32)
ONE_CLICK = {"List-Unsubscribe": "One-Click"}

notifier = test_citizens.notifier  # the fixture


def sign(keys=KEYS, *, purpose="unsubscribe", subject="ES-1", now=NOW) -> str:
    return tokens.sign(keys, purpose=purpose, subject=subject, detail="email", now=now)


def refusal(keys, token, *, purpose="unsubscribe", max_age=DAY, now=NOW) -> tokens.Refusal:
    with pytest.raises(tokens.TokenRefused) as refused:
        tokens.verify(keys, token, purpose=purpose, max_age=max_age, now=now)
    return refused.value.reason


def test_a_token_is_valid_for_its_purpose_only():
    preferences_token = sign(purpose="preferences")
    assert refusal(KEYS, preferences_token) is tokens.Refusal.INVALID
    claims = tokens.verify(KEYS, preferences_token, purpose="preferences", max_age=DAY, now=NOW)
    assert claims.subject == "ES-1"


def test_a_token_expires_after_its_max_age():
    token = sign()
    later = NOW + timedelta(days=1, seconds=1)
    assert tokens.verify(KEYS, token, purpose="unsubscribe", max_age=DAY, now=NOW + DAY)
    assert refusal(KEYS, token, now=later) is tokens.Refusal.EXPIRED
    assert refusal(KEYS, sign(now=NOW + timedelta(hours=1))) is tokens.Refusal.INVALID  # future


def test_rotation_keeps_the_previous_secret_for_verification_only():
    old = tokens.TokenKeys(b"o" * 32)
    rotated = tokens.TokenKeys(b"n" * 32, previous=(b"o" * 32,))
    assert tokens.verify(rotated, sign(old), purpose="unsubscribe", max_age=DAY, now=NOW)
    assert refusal(tokens.TokenKeys(b"n" * 32), sign(old)) is tokens.Refusal.INVALID
    assert refusal(old, sign(rotated)) is tokens.Refusal.INVALID  # signed with the new one


def test_a_subject_with_separators_cannot_be_reshaped():
    token = sign(subject='ES-1","x\x1f')
    claims = tokens.verify(KEYS, token, purpose="unsubscribe", max_age=DAY, now=NOW)
    assert (claims.subject, claims.detail) == ('ES-1","x\x1f', "email")
    _, payload, mac = token.split(".")
    raw = base64.urlsafe_b64decode(payload + "==").replace(b"ES-1", b"ES-2")
    edited = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    assert refusal(KEYS, f"v2.{edited}.{mac}") is tokens.Refusal.INVALID


def test_production_requires_a_token_secret_of_its_own():
    production = {"env": "production", "admin_key": "k" * 32, "allow_development_providers": True}
    with pytest.raises(ConfigurationError, match="AVISA_TOKEN_SECRET"):
        Settings(**production).check_production_safety()
    with pytest.raises(ConfigurationError, match="at least 32"):
        Settings(**production, token_secret="short").check_production_safety()
    Settings(**production, token_secret="s" * 32).check_production_safety()


def test_development_tokens_are_not_keyed_by_the_admin_key_itself():
    settings = Settings(env="development")
    assert settings.token_keys().current != b"dev-admin-key"
    assert settings.token_keys() == Settings(env="development").token_keys()
    assert Settings(env="development", token_secret="x" * 32).token_keys().current == b"x" * 32


def test_an_expired_link_shows_a_page_and_changes_nothing(notifier):
    client, settings = notifier
    old = unsubscribe_token(settings, now=datetime.now(UTC) - timedelta(days=181))
    for answer in (client.get(f"/unsubscribe/{old}"), client.post(f"/unsubscribe/{old}")):
        assert answer.status_code == 410 and "caducado" in answer.text
    assert preferences(client)["opt_out"] == []
    recent = unsubscribe_token(settings, now=datetime.now(UTC) - timedelta(days=179))
    assert client.post(f"/unsubscribe/{recent}", data=ONE_CLICK).status_code == 200
    assert preferences(client)["opt_out"] == ["email"]


@pytest.mark.parametrize(
    "token", ["%ED%A0%80", "v2.%ED%A0%80.x", "v2." + "A" * 5000, "v2.%00.%00", "v2..", "a.b.c.d"]
)
def test_garbage_tokens_get_the_invalid_link_page(notifier, token):
    client, _ = notifier
    for answer in (client.get(f"/unsubscribe/{token}"), client.post(f"/unsubscribe/{token}")):
        assert answer.status_code in (400, 404), answer.text
    assert preferences(client)["opt_out"] == []


def test_another_purposes_token_does_not_unsubscribe(notifier):
    client, settings = notifier
    other = tokens.sign(
        settings.token_keys(),
        purpose="preferences",
        subject="ES-12345678Z",
        detail="email",
        now=datetime.now(UTC),
    )
    assert client.post(f"/unsubscribe/{other}", data=ONE_CLICK).status_code == 400
    assert preferences(client)["opt_out"] == []


def legacy_token(citizen_id: str) -> str:
    """A link of the first scheme: keyed from the admin key, no version, no expiry."""
    secret = hmac.new(b"dev-admin-key", b"avisa-unsubscribe-v1", hashlib.sha256).digest()
    payload = f"{citizen_id}\x1femail".encode()
    mac = hmac.new(secret, payload, hashlib.sha256).digest()[:16]

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{b64(payload)}.{b64(mac)}"


def test_old_scheme_links_are_refused_unless_a_transition_is_configured(notifier):
    client, _ = notifier
    assert client.post(f"/unsubscribe/{legacy_token('ES-12345678Z')}").status_code == 400
    assert preferences(client)["opt_out"] == []


def test_old_scheme_links_work_until_the_transition_ends(
    broker, topic_prefix, database_url, providers, tmp_path
):
    until = datetime.now(UTC) + timedelta(days=30)
    settings = make_settings(broker, topic_prefix, database_url, tmp_path, token_legacy_until=until)
    with running(settings) as client:
        done = client.post(f"/unsubscribe/{legacy_token('ES-12345678Z')}", data=ONE_CLICK)
        assert done.status_code == 200
        assert preferences(client)["opt_out"] == ["email"]
    ended = make_settings(
        broker, topic_prefix, database_url, tmp_path, token_legacy_until=datetime.now(UTC)
    )
    with running(ended) as client:
        assert client.post(f"/unsubscribe/{legacy_token('ES-9')}").status_code == 400
