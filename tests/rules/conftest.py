"""Fixtures of the rules service's API tests: the app on a migrated database, no broker."""

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from services.rules.config import Settings
from services.rules.main import create_app, migrate


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        env="development",
        admin_key=None,
        kafka_bootstrap="127.0.0.1:1",
        rules_consumer_enabled=False,
        default_locale="es",
        default_timezone="Europe/Madrid",
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    migrate(settings)
    with TestClient(create_app(settings)) as test_client:
        yield test_client
