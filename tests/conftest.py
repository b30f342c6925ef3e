"""Session fixtures that start real things: a Tansu broker, PostgreSQL databases, fake providers."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from avisa.broker import free_port, start_tansu, stop
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


def create_postgres_database() -> str:
    """A fresh, empty PostgreSQL database; returns its SQLAlchemy URL."""
    name = f"avisa_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[-1]
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Each test that takes this runs twice: on a SQLite file and on a fresh PostgreSQL database."""
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
