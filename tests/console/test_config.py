"""Settings: the cookie secret, the development demo account, `avisa dev`'s banner."""

from __future__ import annotations

from pathlib import Path

import pytest

from avisa.dev import SERVICES, banner, development_env
from common.settings import ConfigurationError
from services.console.config import DEV_STAFF_EMAIL, DEV_STAFF_PASSWORD, Settings
from tests.console.conftest import Account, console_app, sign_in


def test_production_refuses_to_start_without_a_console_secret():
    settings = Settings(env="production", admin_key="k", console_secret=None)
    with pytest.raises(ConfigurationError, match="AVISA_CONSOLE_SECRET"):
        settings.check_console_safety()


def test_development_derives_a_stable_secret():
    first = Settings(env="development").effective_secret()
    assert first == Settings(env="development").effective_secret() and len(first) == 32


def test_the_development_demo_account_signs_in_without_a_security_code(tmp_path):
    settings = Settings(env="development", database_url=f"sqlite:///{tmp_path / 'c.db'}")
    with console_app(settings) as client:
        demo = Account(DEV_STAFF_EMAIL, DEV_STAFF_PASSWORD, None, "admin", None)
        answer = sign_in(client, demo, code="")
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        assert "Cerrar sesión" in client.get("/").text
        assert "Secure" not in answer.headers["set-cookie"]  # http://127.0.0.1 in make run


def test_production_has_no_demo_account(tmp_path):
    settings = Settings(
        env="production",
        admin_key="k",
        console_secret="s" * 32,
        console_cookie_secure=False,
        database_url=f"sqlite:///{tmp_path / 'c.db'}",
    )
    with console_app(settings) as client:
        demo = Account(DEV_STAFF_EMAIL, DEV_STAFF_PASSWORD, None, "admin", None)
        assert sign_in(client, demo, code="").status_code == 422


def test_make_run_starts_the_console_and_prints_its_url_and_account():
    assert SERVICES["console"] == 8000
    text = banner(development_env(Path("/tmp/avisa-dev")))
    assert "http://127.0.0.1:8000/" in text
    assert DEV_STAFF_EMAIL in text and DEV_STAFF_PASSWORD in text


def test_production_cookies_are_secure_httponly_and_lax(tmp_path):
    settings = Settings(
        env="production",
        admin_key="k",
        console_secret="s" * 32,
        database_url=f"sqlite:///{tmp_path / 'c.db'}",
    )
    with console_app(settings) as client:
        cookie = client.get("/sign-in").headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
