"""A cancel accepted but not yet processed when its reminder is due still wins (real broker).

The rule engine's consumer is stopped after it stored the reminders, so the cancel waits in
`events.v1` while they come due; a scheduler that waits for the watermark sends nothing, and
the engine, back, cancels them. Without the wait (the control), the reminder goes out stale.
"""

import time
from datetime import UTC, datetime, timedelta

from starlette.testclient import TestClient

from services.rules.main import create_app
from services.rules.scheduler import Scheduler
from tests.e2e.system import wait_for
from tests.rules.test_timers import Harness, install, settings_for, stamp


def _cancel_while_the_engine_is_stopped(settings) -> tuple[Harness, Scheduler]:
    harness = Harness(settings)
    app = create_app(settings)
    with TestClient(app) as client:
        install(client)
        assert app.state.consumer.assigned.wait(30)
        now = datetime.now(UTC)
        harness.publish(id="o1", type="case.opened", subject="case/lag", time=stamp(now))
        harness.statuses(until=lambda rs: len(rs) >= 2)  # both scheduled
        app.state.consumer.stop()
        assert app.state.consumer.stopped.wait(30)
        harness.publish(id="c1", type="case.closed", subject="case/lag", time=stamp(now))
        # both reminders (due at +3 s and +4 s) come due with the cancel still unprocessed
        time.sleep(max(0.0, (now + timedelta(seconds=5) - datetime.now(UTC)).total_seconds()))
        scheduler = app.state.scheduler
        rounds = scheduler.rounds
        wait_for(lambda: scheduler.rounds > rounds + 2, 10)
    return harness, scheduler


def test_a_reminder_waits_for_an_unprocessed_cancel_and_is_never_sent(broker, database_url):
    settings = settings_for(broker, database_url)
    harness, scheduler = _cancel_while_the_engine_is_stopped(settings)
    assert scheduler.holding
    assert harness.requests() == []
    # the engine comes back: it processes the cancel, and the reminders are cancelled
    with TestClient(create_app(settings)):
        statuses = harness.statuses(until=lambda rs: len(rs) >= 4)
        assert sorted(s.status for s in statuses).count("cancelled") == 2
        time.sleep(1.5)  # room for a wrong reminder to be published before counting
    assert harness.requests() == []


def test_without_the_wait_the_reminder_goes_out_stale(broker, database_url):
    settings = settings_for(broker, database_url, rules_scheduler_waits_for_consumer=False)
    harness, scheduler = _cancel_while_the_engine_is_stopped(settings)
    assert not scheduler.holding
    assert len(harness.requests(until=lambda rs: len(rs) >= 2)) == 2
