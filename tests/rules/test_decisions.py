"""The decision trace: built from one event's evaluation (pure), and published on decisions.v1."""

import json
from datetime import UTC, datetime, timedelta

from starlette.testclient import TestClient

from schemas.decisions import Decision, Reason
from services.rules import flows, reminders
from services.rules.decisions import Trace
from services.rules.main import create_app
from services.rules.rendering import Renderer
from tests.rules.factories import ADMIN, make_event, make_rule, make_template
from tests.rules.test_timers import TEMPLATE, Harness, settings_for, stamp

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
RENDERER = Renderer(default_locale="es", default_timezone="Europe/Madrid")


def trace_of(rules, event) -> Decision:
    """What the consumer records for an event, without the timer steps."""
    trace = Trace(event, at=NOW)
    matches = flows.match(rules, event, now=NOW)
    trace.matches(matches)
    for planned in flows.plan(
        matches.rules, {"licencia-renovacion": make_template()}, event, renderer=RENDERER, now=NOW
    ):
        trace.immediate(planned)
    return trace.decision()


def test_each_rule_whose_type_matched_says_whether_it_matched_and_why_not():
    rules = [
        make_rule(id="aviso"),
        make_rule(id="otra-fuente", source="aeat"),
        make_rule(id="falsa", when='data.category == "C"', version=3),
        make_rule(id="rota", when="data.missing > 1"),
        make_rule(id="otro-tipo", on="tax.*"),
        make_rule(id="sin-plantilla", template="no-existe"),
    ]
    event = make_event(category="B")

    decision = trace_of(rules, event)

    assert decision.event.id == event.id and decision.at == NOW
    entries = {d.rule: d for d in decision.rules}
    assert set(entries) == {"aviso", "otra-fuente", "falsa", "rota", "sin-plantilla"}
    assert entries["aviso"].matched and entries["aviso"].reason is None
    assert entries["aviso"].notifications == [flows.immediate_id(rules[0], event)]
    assert (entries["otra-fuente"].matched, entries["otra-fuente"].reason) == (
        False,
        Reason.SOURCE_MISMATCH,
    )
    assert entries["otra-fuente"].detail == "the event source 'dgt' is not 'aeat'"
    assert (entries["falsa"].reason, entries["falsa"].version) == (Reason.CONDITION_FALSE, 3)
    assert entries["rota"].reason == Reason.CONDITION_ERROR and "missing" in (
        entries["rota"].detail or ""
    )
    assert entries["sin-plantilla"].matched and entries["sin-plantilla"].reason == Reason.FAILED
    assert entries["sin-plantilla"].notifications == []
    assert all(d.role == "trigger" for d in decision.rules)


def reminder_plan(offsets, deadline: str):
    rule = make_rule(
        id="recordatorio",
        channels=["sms"],
        schedule={"relative_to": "data.expires_on", "offsets": offsets, "at": "09:00"},
        cancel_on=["license.renewed"],
    )
    event = make_event(expires_on=deadline)
    plan = reminders.plan_reminders(
        rule, make_template(), event, renderer=RENDERER, default_zone="Europe/Madrid", now=NOW
    )
    return rule, event, plan


def test_past_offsets_are_listed_as_skipped_and_a_plan_all_in_the_past_says_so():
    rule, event, plan = reminder_plan(["-P30D", "-P1D"], "2026-12-10")
    trace = Trace(event, at=NOW)
    trace.matches(flows.match([rule], event, now=NOW))
    ids = [r.request.id for r in plan.ahead]
    trace.reminders(plan, scheduled=ids, cancelled=["old-1"], reason=None, detail=None)
    [entry] = trace.decision().rules
    assert (entry.skipped, entry.notifications, entry.cancelled) == (["-P30D"], ids, ["old-1"])
    assert entry.reason is None

    rule, event, plan = reminder_plan(["-P30D", "-P7D"], "2026-12-01")
    trace = Trace(event, at=NOW)
    trace.matches(flows.match([rule], event, now=NOW))
    trace.reminders(plan, scheduled=[], cancelled=[], reason=None, detail=None)
    [entry] = trace.decision().rules
    assert entry.reason == Reason.OFFSETS_PAST and entry.skipped == ["-P30D", "-P7D"]


def test_a_trigger_after_its_cancel_and_a_cancel_on_rule_are_traced():
    rule, event, plan = reminder_plan(["-P7D"], "2027-01-15")
    trace = Trace(event, at=NOW)
    trace.matches(flows.match([rule], event, now=NOW))
    trace.reminders(
        plan, scheduled=[], cancelled=[], reason=Reason.CANCELLED_BEFORE_TRIGGER, detail="why"
    )
    [entry] = trace.decision().rules
    assert entry.matched and entry.reason == Reason.CANCELLED_BEFORE_TRIGGER

    renewed = make_event(type="license.renewed")
    trace = Trace(renewed, at=NOW)
    trace.matches(flows.match([rule], renewed, now=NOW))
    trace.cancelled(rule, ["n-1", "n-2"])
    [entry] = trace.decision().rules
    assert (entry.role, entry.matched, entry.cancelled) == ("cancel", True, ["n-1", "n-2"])


FOLLOW = {
    "on": "case.opened",
    "source": "sede",
    "when": 'data.kind != "test"',
    "schedule": {"relative_to": "time", "offsets": ["-PT1M", "P1D"]},
    "cancel_on": ["case.closed"],
    "channels": ["sms"],
    "template": "aviso",
}


def test_one_decision_per_event_is_published_keyed_by_subject(broker, database_url):
    settings = settings_for(broker, database_url)
    harness = Harness(settings)
    app = create_app(settings)
    with TestClient(app) as client:
        assert client.put("/v1/templates/aviso", json=TEMPLATE, headers=ADMIN).status_code == 200
        assert client.put("/v1/rules/seguir", json=FOLLOW, headers=ADMIN).status_code == 200
        other = {**FOLLOW, "source": "otra", "when": None}
        assert client.put("/v1/rules/ajena", json=other, headers=ADMIN).status_code == 200
        assert app.state.consumer.assigned.wait(30)
        now = datetime.now(UTC)
        harness.publish(id="x1", type="case.opened", subject="case/x", time=stamp(now), kind="real")
        harness.publish(id="x2", type="case.opened", subject="case/y", time=stamp(now), kind="test")
        later = stamp(now + timedelta(seconds=1))
        harness.publish(id="x3", type="case.closed", subject="case/x", time=later)
        harness.publish(id="x4", type="other.thing", subject="case/z", time=later)
        records = harness.records(settings.topics.decisions, until=lambda rs: len(rs) >= 4)

    assert len(records) == 4
    decisions = {Decision.model_validate_json(r.value).event.id: r for r in records}
    assert {k: r.key.decode() for k, r in decisions.items()} == {
        "x1": "case/x",
        "x2": "case/y",
        "x3": "case/x",
        "x4": "case/z",
    }

    def entries(event_id):
        body = json.loads(decisions[event_id].value)
        return {(e["rule"], e["role"]): e for e in body["rules"]}

    opened = entries("x1")
    assert opened[("ajena", "trigger")]["reason"] == "source_mismatch"
    seguir = opened[("seguir", "trigger")]
    assert seguir["matched"] and seguir["skipped"] == ["-PT1M"]
    assert len(seguir["notifications"]) == 1
    assert entries("x2")[("seguir", "trigger")]["reason"] == "condition_false"
    closed = entries("x3")
    assert closed[("seguir", "cancel")]["cancelled"] == seguir["notifications"]
    assert closed[("ajena", "cancel")]["cancelled"] == []
    assert entries("x4") == {}
