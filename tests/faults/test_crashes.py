"""SIGKILL each service mid-stream, restart it, and count: nothing lost, nothing sent twice."""

from __future__ import annotations

import functools
import os
import time
import uuid

import pytest

from tests.e2e.system import System, wait_for
from tests.faults.stream import (
    AgencyStream,
    assert_exactly_once,
    reconciled,
    still_sending,
    wait_until_delivered,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

ROUNDS = int(os.environ.get("AVISA_FAULT_ROUNDS", "5"))


@pytest.mark.parametrize("victim", ["events", "rules", "notifier"])
def _accepted_at_least(stream: AgencyStream, count: int) -> bool:
    return len(stream.accepted) >= count


def test_a_crashed_service_loses_nothing_and_sends_nothing_twice(
    fault_system: System, providers, victim: str
) -> None:
    service = fault_system.services[victim]
    stream = AgencyStream(lambda: fault_system.services["events"].url, run=uuid.uuid4().hex[:6])
    stream.start()
    try:
        # Each round kills mid-stream: once ten more events were accepted since the service
        # came back (half a second at the stream's pace; longer on a loaded machine, where a
        # fixed second let too few through).
        for round_ in range(ROUNDS + 1):
            mark = len(stream.accepted)
            wait_for(functools.partial(_accepted_at_least, stream, mark + 10), 60)
            if round_ < ROUNDS:
                service.kill()
                service.restart()
    finally:
        stream.stop()
    assert len(stream.accepted) >= ROUNDS * 10
    wait_until_delivered(providers, stream.accepted, fault_system.database_url)
    time.sleep(3)  # room for a late duplicate to show up before counting
    assert_exactly_once(providers, stream.accepted)


@pytest.mark.parametrize("channel", ["sms", "email"])
def test_a_notifier_killed_during_the_provider_call_does_not_send_again(
    fault_system: System, providers, channel: str
) -> None:
    providers.script(latency_ms=2500)  # the provider holds each request while we kill
    stream = AgencyStream(lambda: fault_system.services["events"].url, run=uuid.uuid4().hex[:6])
    stream.start()
    time.sleep(0.5)
    stream.stop()
    notifier = fault_system.services["notifier"]
    if channel == "sms":
        time.sleep(2.0)  # the SMS (each notification's first channel) are at Twilio
    else:  # every SMS answered: the emails that follow them are at SendGrid
        wait_for(lambda: len(providers.twilio_requests()) >= len(stream.accepted), 60)
        time.sleep(0.5)
    notifier.kill()
    killed_at = time.time()
    time.sleep(3.0)  # the providers finish what was in flight; the notifier never hears back
    restarted_at = time.time()
    requests = providers.twilio_requests if channel == "sms" else providers.sendgrid_requests
    in_flight = [r for r in requests() if killed_at < r["at"] < restarted_at]
    assert in_flight, f"no {channel} was in flight at the kill: the test proves nothing"
    providers.script(latency_ms=0)
    notifier.restart()
    wait_until_delivered(providers, stream.accepted, fault_system.database_url)
    # What the kill cut is already at the provider, so "delivered" comes at once; the reconciler
    # takes an attempt only once it is AVISA_RECONCILE_AFTER_S old (an email's evidence may be
    # waited for longer): wait until none is left `sending`, then give a resend time to show.
    wait_for(lambda: still_sending(fault_system.database_url) == 0, 60, every=0.5)
    time.sleep(3)
    assert_exactly_once(providers, stream.accepted)
    # Each send cut by the kill was settled by asking Twilio or by SendGrid's events, not by
    # a guess (the fake posts each accepted email's `processed` event, as SendGrid does).
    settled = reconciled(fault_system.database_url)
    proof = "found at twilio" if channel == "sms" else "sendgrid reported it"
    assert len([d for d in settled if proof in d]) >= len(in_flight)
    assert not [d for d in settled if "assumed sent" in d]
