"""SIGKILL each service mid-stream, restart it, and count: nothing lost, nothing sent twice."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from tests.e2e.system import System, wait_for
from tests.faults.stream import AgencyStream, all_delivered, assert_exactly_once

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

ROUNDS = int(os.environ.get("AVISA_FAULT_ROUNDS", "5"))


@pytest.mark.parametrize("victim", ["events", "rules", "notifier"])
def test_a_crashed_service_loses_nothing_and_sends_nothing_twice(
    fault_system: System, providers, victim: str
) -> None:
    service = fault_system.services[victim]
    stream = AgencyStream(lambda: fault_system.services["events"].url, run=uuid.uuid4().hex[:6])
    stream.start()
    try:
        for _ in range(ROUNDS):
            time.sleep(1.0)
            service.kill()
            service.restart()
        time.sleep(1.0)
    finally:
        stream.stop()
    assert len(stream.accepted) >= ROUNDS * 10
    wait_for(lambda: all_delivered(providers, stream.accepted), timeout=120, every=0.5)
    time.sleep(3)  # room for a late duplicate to show up before counting
    assert_exactly_once(providers, stream.accepted)
