"""Session fixtures that start real things: a Tansu broker, PostgreSQL databases, fake providers."""

from __future__ import annotations

import importlib
import subprocess
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from avisa.broker import free_port, start_tansu, stop
from common import db
from tests.fakes.providers import FakeProviders

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


class Broker:
    """A running Tansu broker; `stop()`/`start()` cut and restore it on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = start_tansu(self.port)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    running = Broker()
    running.start()
    yield running
    running.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A prefix of its own for every test, so tests never see each other's messages."""
    return f"t{uuid.uuid4().hex[:10]}."


SERVICES_WITH_TABLES = ("events", "rules", "notifier")


def migrate_every_service(url: str) -> None:
    """Apply every service's migrations, as the services do when they start."""
    for service in SERVICES_WITH_TABLES:
        main = importlib.import_module(f"services.{service}.main")
        db.migrate(url, script_location=main.MIGRATIONS, version_table=main.VERSION_TABLE)


def create_postgres_database(template: str | None = None) -> str:
    """A fresh PostgreSQL database (empty, or a copy of `template`); returns its URL."""
    name = f"avisa_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"{clause}')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[-1]
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """The name of a database migrated once per test process: tests get copies of it
    (`CREATE DATABASE ... TEMPLATE`, about half the cost of migrating every service)."""
    url = create_postgres_database()
    migrate_every_service(url)
    yield url.rsplit("/", 1)[-1]
    drop_postgres_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Each test that takes this runs twice: on a SQLite file and on a PostgreSQL database
    already migrated (the services find nothing to apply when they start)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'avisa.db'}"
        return
    url = create_postgres_database(template=request.getfixturevalue("postgres_template"))
    yield url
    drop_postgres_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """`database_url` with nothing migrated: for the tests of the migrations themselves."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'avisa.db'}"
        return
    url = create_postgres_database()
    yield url
    drop_postgres_database(url)


@pytest.fixture(scope="session")
def fake_providers() -> Iterator[FakeProviders]:
    fake = FakeProviders().start()
    yield fake
    fake.stop()


@pytest.fixture
def providers(fake_providers: FakeProviders) -> FakeProviders:
    """The fake providers, emptied of earlier tests' requests and scripts."""
    fake_providers.reset()
    return fake_providers
