"""Times an event pushes outside the calendar fail one rule, never the event or the engine."""

from datetime import UTC, datetime

import pytest

from services.rules import flows, reminders
from services.rules.rendering import Renderer
from tests.rules.factories import make_event, make_rule, make_template

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
RENDERER = Renderer(default_locale="es", default_timezone="Europe/Madrid")
TEMPLATES = {"licencia-renovacion": make_template()}


def test_an_expiry_past_year_9999_fails_that_rule_and_the_others_still_plan():
    event = make_event(time="9999-12-31T23:59:59Z")
    expiring = make_rule(id="aviso", expires_after="P2D")
    forever = make_rule(id="sin-caducidad", expires_after=None)
    failure, request = flows.plan([expiring, forever], TEMPLATES, event, renderer=RENDERER, now=NOW)
    assert failure.request is None and failure.failure is not None
    assert failure.failure.status == "failed"
    assert failure.failure.rule == "aviso"
    assert "expires_after P2D" in (failure.failure.detail or "")
    assert "outside the calendar" in (failure.failure.detail or "")
    assert request.request is not None and request.request.not_after is None


@pytest.mark.parametrize(
    ("expires_on", "offsets"),
    [("0001-01-01", ["-P30D", "-P1D"]), ("9999-12-31", ["-P1D"]), ("9999-12-01", ["P1M"])],
)
def test_reminders_outside_the_calendar_are_a_failure_of_the_rule(expires_on, offsets):
    rule = make_rule(schedule={"relative_to": "data.expires_on", "offsets": offsets, "at": "09:00"})
    plan = reminders.plan_reminders(
        rule,
        make_template(),
        make_event(expires_on=expires_on),
        renderer=RENDERER,
        default_zone="Europe/Madrid",
        now=NOW,
    )
    assert plan.reminders == []
    assert plan.failure is not None
    assert expires_on in plan.failure and "outside the calendar" in plan.failure


def test_escalations_after_a_far_future_event_time_are_a_failure_of_the_rule():
    rule = make_rule(schedule={"relative_to": "time", "offsets": ["P3D"]})
    plan = reminders.plan_reminders(
        rule,
        make_template(),
        make_event(time="9999-12-31T23:59:59Z"),
        renderer=RENDERER,
        default_zone="Europe/Madrid",
        now=NOW,
    )
    assert plan.failure is not None and "outside the calendar" in plan.failure
