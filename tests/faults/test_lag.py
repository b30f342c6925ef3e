"""The rule engine paused (SIGSTOP) while a cancel waits in `events.v1` and reminders come due.

The rules service runs as two real replicas on one database: one consumes `events.v1` (the
rule engine), the other runs the scheduler. Pausing the engine's process for more than 5 s
around the reminders' due time: the cancelled case gets nothing, and the other case's reminder
waits for the engine and goes out once it is back, late by the pause and no more.
"""

from __future__ import annotations

import functools
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from avisa.admin import example_event
from avisa.broker import free_port
from tests.e2e.system import ADMIN_KEY, AGENCY_KEY, Service, System, wait_for
from tests.faults.conftest import FAULT_ENV

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

DUE_AFTER_S = 8
TEMPLATE = {"locales": {"es": {"sms": "Recordatorio de {{ subject }}"}}}
RULE = {
    "on": "case.opened",
    "schedule": {"relative_to": "time", "offsets": [f"PT{DUE_AFTER_S}S"]},
    "cancel_on": ["case.closed"],
    "channels": ["sms"],
    "template": "lag-aviso",
}


@pytest.fixture
def two_replicas(broker, postgres_url, providers, tmp_path) -> Iterator[System]:  # type: ignore[no-untyped-def]
    env = FAULT_ENV | {
        # the pause must stay well inside the engine's session: no rebalance, just lag
        "AVISA_KAFKA_SESSION_TIMEOUT_MS": "15000",
        "AVISA_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
        "AVISA_RULES_SCHEDULER_ENABLED": "false",
    }
    system = System(
        bootstrap=broker.bootstrap,
        database_url=postgres_url,
        providers_url=providers.url,
        workdir=tmp_path,
        topic_prefix=f"l{uuid.uuid4().hex[:8]}.",
        extra_env=env,
    )
    system.start()
    scheduler_env = system.environment() | {
        "AVISA_RULES_SCHEDULER_ENABLED": "true",
        "AVISA_RULES_CONSUMER_ENABLED": "false",
    }
    scheduler = Service("rules", free_port(), scheduler_env, tmp_path / "rules-scheduler.log")
    system.services["rules-scheduler"] = scheduler
    scheduler.start()
    scheduler.wait_ready()
    yield system
    engine = system.services["rules"].process
    if engine is not None and engine.poll() is None:
        engine.send_signal(signal.SIGCONT)
    system.stop()


def _case(run: str, name: str, phone: str) -> dict[str, Any]:
    event = example_event(event_id=f"{run}-{name}-open")
    event["type"], event["subject"] = "case.opened", f"case/{run}-{name}"
    event["data"]["citizen"].update(id=f"{run}-{name}", phone=phone)
    return event


def _post(events: httpx.Client, event: dict[str, Any]) -> None:
    response = events.post("/v1/events", json=event)
    assert response.status_code == 202, response.text


def _statuses(events: httpx.Client, subject: str) -> list[str]:
    response = events.get(f"/v1/subjects/{subject}/timeline")
    if response.status_code != 200:
        return []
    return [n["status"] for n in response.json().get("notifications", [])]


def _scheduled(events: httpx.Client, subject: str) -> bool:
    return "scheduled" in _statuses(events, subject)


def _sms_to(providers: Any, phone: str) -> list[dict[str, Any]]:
    return [r for r in providers.twilio_requests() if r["form"]["To"] == phone]


def test_a_paused_engine_makes_reminders_wait_never_stale(two_replicas: System, providers) -> None:
    system, run = two_replicas, uuid.uuid4().hex[:6]
    with system.client("rules", ADMIN_KEY) as rules:
        assert rules.put("/v1/templates/lag-aviso", json=TEMPLATE).status_code == 200
        assert rules.put("/v1/rules/lag-seguimiento", json=RULE).status_code == 200
    events = system.client("events", AGENCY_KEY)
    # The engine has joined its group and loaded the new rule (its rule book refreshes every
    # few seconds) once a warm-up case is scheduled; one posted before the rule reached it
    # is never matched, so post another until one is.
    deadline = time.monotonic() + 90
    for attempt in range(100):
        warm = _case(f"{run}{attempt}", "warm", "+34610000001")
        _post(events, warm)
        try:
            wait_for(functools.partial(_scheduled, events, warm["subject"]), 5)
            break
        except AssertionError:
            assert time.monotonic() < deadline, "the engine never scheduled a warm-up case"
    cancelled, kept = _case(run, "a", "+34610000002"), _case(run, "b", "+34610000003")
    opened_at = time.time()
    for event in (cancelled, kept):
        _post(events, event)
    for subject in (cancelled["subject"], kept["subject"]):

        def scheduled(subject: str = subject) -> bool:
            return "scheduled" in _statuses(events, subject)

        wait_for(scheduled, 30)
    due = opened_at + DUE_AFTER_S
    assert time.time() < due - 1, "the reminders were stored too late to test the pause"

    engine = system.services["rules"].process
    assert engine is not None
    engine.send_signal(signal.SIGSTOP)
    paused_at = time.time()
    close = example_event(event_id=f"{run}-a-close")
    close["type"], close["subject"] = "case.closed", cancelled["subject"]
    close["data"]["citizen"] = cancelled["data"]["citizen"]
    _post(events, close)  # accepted (202) before the reminder is due, and not processed
    time.sleep(max(due + 2.0, paused_at + 5.0) - time.time())
    assert _sms_to(providers, "+34610000002") == []
    assert _sms_to(providers, "+34610000003") == []  # waits: it may not know of a cancel
    engine.send_signal(signal.SIGCONT)
    resumed_at = time.time()

    [sent] = wait_for(lambda: _sms_to(providers, "+34610000003") or None, 30)
    late_by, paused_past_due = sent["at"] - due, resumed_at - due
    assert sent["at"] >= resumed_at - 0.5
    assert late_by < paused_past_due + 5.0, (late_by, paused_past_due)
    wait_for(lambda: "cancelled" in _statuses(events, cancelled["subject"]), 30)
    time.sleep(2.0)  # room for a stale reminder to reach the provider before counting
    assert _sms_to(providers, "+34610000002") == []
    events.close()
