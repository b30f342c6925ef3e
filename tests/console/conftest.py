"""Fixtures of the console tests: the real events and rules apps in-process, the console on
top of them, staff accounts, and signing in."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import html5lib
import pyotp
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy.orm import Session

from common.db import make_engine, make_sessions
from services.console import staff
from services.console.config import Settings
from services.console.main import create_app, migrate
from services.console.web import utcnow
from services.rules.config import Settings as RulesSettings
from services.rules.main import create_app as create_rules_app
from services.rules.main import migrate as migrate_rules
from tests.console.browser import CHROMIUM, CHROMIUM_ARGS, ConsoleWatch
from tests.e2e.system import System
from tests.events.conftest import ADMIN_KEY, make_settings, running

PASSWORD = "correct horse battery staple"
E2E_ADMIN_KEY = f"e2e-admin-{uuid.uuid4().hex}"
CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def console_settings(database_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "env": "production",
        "admin_key": ADMIN_KEY,
        "console_secret": "test-console-secret-0123456789",
        "console_cookie_secure": False,  # the TestClient speaks http
        "console_lockout_seconds": 30.0,
    }
    return Settings(**{**values, **extra})


@dataclass
class Backends:
    """The events and rules services, running in this process on one database."""

    events: TestClient
    rules: TestClient
    database_url: str


@pytest.fixture(scope="module")
def backends(broker, tmp_path_factory) -> Iterator[Backends]:
    database_url = f"sqlite:///{tmp_path_factory.mktemp('console') / 'avisa.db'}"
    events_settings = make_settings(broker.bootstrap, f"t{uuid.uuid4().hex[:10]}.", database_url)
    rules_settings = RulesSettings(
        database_url=database_url,
        env="development",
        admin_key=ADMIN_KEY,
        kafka_bootstrap="127.0.0.1:1",
        rules_consumer_enabled=False,
        rules_scheduler_enabled=False,
    )
    migrate_rules(rules_settings)
    with running(events_settings) as events, TestClient(create_rules_app(rules_settings)) as rules:
        yield Backends(events=events, rules=rules, database_url=database_url)


@contextmanager
def console_app(settings: Settings, backends: Backends | None = None) -> Iterator[TestClient]:
    migrate(settings)
    http = {"events": backends.events, "rules": backends.rules} if backends else None
    app = create_app(settings, http=http)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def settings(backends: Backends) -> Settings:
    return console_settings(backends.database_url)


@pytest.fixture(scope="module")
def app_client(settings: Settings, backends: Backends) -> Iterator[TestClient]:
    with console_app(settings, backends) as client:
        yield client


@pytest.fixture
def client(app_client: TestClient) -> TestClient:
    """The module's console client with no cookies: every test starts signed out, in Spanish."""
    app_client.cookies.clear()
    return app_client


@dataclass
class Account:
    email: str
    password: str
    secret: str | None
    role: str
    agency_id: str | None

    def code(self) -> str:
        return pyotp.TOTP(self.secret).now() if self.secret else ""


def add_account(
    database_url: str, *, role: str = "admin", agency_id: str | None = None, totp: bool = True
) -> Account:
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.es"
    engine = make_engine(database_url)
    try:
        with make_sessions(engine).begin() as db:
            _, secret = staff.add(
                session=db,
                email=email,
                password=PASSWORD,
                role=role,
                agency_id=agency_id,
                now=utcnow(),
                with_totp=totp,
            )
    finally:
        engine.dispose()
    return Account(email, PASSWORD, secret, role, agency_id)


@pytest.fixture
def account(settings: Settings) -> Callable[..., Account]:
    def make(**kwargs: Any) -> Account:
        return add_account(settings.database_url, **kwargs)

    return make


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def post_form(client: TestClient, page: str, action: str, data: dict[str, str], **kw: Any) -> Any:
    """GET `page` for its CSRF token, then POST `data` to `action` as its form would."""
    token = csrf_of(client.get(page).text)
    return client.post(action, data={**data, "csrf_token": token}, **kw)


def sign_in(client: TestClient, account: Account, *, code: str | None = None) -> Any:
    data = {
        "email": account.email,
        "password": account.password,
        "code": account.code() if code is None else code,
    }
    return post_form(client, "/sign-in", "/sign-in", data, follow_redirects=False)


def parse(html: str) -> Any:
    """The page as a browser would parse it; html5lib raises on a parse error."""
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    return parser.parse(html)


def db_session(database_url: str) -> Session:
    return make_sessions(make_engine(database_url))()


# --- browser tests: the services and the console as processes, one Chromium -------------


@pytest.fixture(scope="session")
def console_url(broker, fake_providers, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """The three services and the console (production mode) as processes, once for every
    browser test; (URL, database URL)."""
    workdir = tmp_path_factory.mktemp("console-e2e")
    database_url = f"sqlite:///{workdir / 'avisa.db'}"
    system = System(
        bootstrap=broker.bootstrap,
        database_url=database_url,
        providers_url=fake_providers.url,
        workdir=workdir,
        topic_prefix=f"e2e{uuid.uuid4().hex[:8]}.",
        extra_env={"AVISA_ADMIN_KEY": E2E_ADMIN_KEY},
    )
    system.start()
    try:
        console = system.start_console(
            AVISA_ENV="production",
            AVISA_CONSOLE_SECRET=uuid.uuid4().hex * 2,
            AVISA_CONSOLE_COOKIE_SECURE="false",  # plain http on loopback
        )
        yield console.url, database_url
    finally:
        system.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def watch() -> ConsoleWatch:
    return ConsoleWatch()


@pytest.fixture
def page(browser: Browser, console_url, watch: ConsoleWatch) -> Iterator[Page]:
    context = browser.new_context(base_url=console_url[0], locale="es-ES")
    page = context.new_page()
    watch.attach(page)
    yield page
    context.close()
    assert watch.errors == []
