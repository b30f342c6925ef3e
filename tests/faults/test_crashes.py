"""SIGKILL each service mid-stream, restart it, and count: nothing lost, nothing sent twice."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from tests.e2e.system import System
from tests.faults.stream import AgencyStream, assert_exactly_once, wait_until_delivered

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
    wait_until_delivered(providers, stream.accepted, fault_system.database_url)
    time.sleep(3)  # room for a late duplicate to show up before counting
    assert_exactly_once(providers, stream.accepted)


def test_a_notifier_killed_during_the_provider_call_does_not_send_again(
    fault_system: System, providers
) -> None:
    providers.script(latency_ms=2500)  # the provider holds each request while we kill
    stream = AgencyStream(lambda: fault_system.services["events"].url, run=uuid.uuid4().hex[:6])
    stream.start()
    time.sleep(0.5)
    stream.stop()
    notifier = fault_system.services["notifier"]
    time.sleep(2.0)
    notifier.kill()
    killed_at = time.time()
    time.sleep(3.0)  # the providers finish what was in flight; the notifier never hears back
    in_flight = [
        r
        for r in providers.twilio_requests() + providers.sendgrid_requests()
        if r["at"] > killed_at
    ]
    assert in_flight, "nothing was in flight at the kill: the test proves nothing"
    providers.script(latency_ms=0)
    notifier.restart()
    wait_until_delivered(providers, stream.accepted, fault_system.database_url)
    time.sleep(4)  # reconciliation runs every second after 2 s: give a resend time to happen
    assert_exactly_once(providers, stream.accepted)
