from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.system import System


@pytest.fixture
def system(broker, database_url, providers, tmp_path) -> Iterator[System]:  # type: ignore[no-untyped-def]
    running = System(
        bootstrap=broker.bootstrap,
        database_url=database_url,
        providers_url=providers.url,
        workdir=tmp_path,
        topic_prefix=f"e2e{uuid.uuid4().hex[:8]}.",
    )
    running.start()
    yield running
    running.stop()
