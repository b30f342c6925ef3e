from datetime import UTC, datetime

import pytest

from schemas.durations import parse_duration
from schemas.notifications import PREFERENCES_URL_PLACEHOLDER, Status, notification_id
from services.rules import flows, reminders
from services.rules.errors import ConditionError
from services.rules.rendering import Renderer
from services.rules.sms import sms_length
from tests.rules.factories import make_event, make_rule, make_template

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
RENDERER = Renderer(default_locale="es", default_timezone="Europe/Madrid")


def matched_ids(rules, event):
    return [c.rule.id for c in flows.match(rules, event, now=NOW).rules]


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("license.expiring", "license.expiring", True),
        ("license.*", "license.expiring", True),
        ("license.*", "licenses.expiring", False),
        ("*.renewed", "license.renewed", True),
        ("license.expiring", "license.expiring.soon", False),
        ("License.*", "license.expiring", False),
    ],
)
def test_type_globs(pattern, event_type, expected):
    assert flows.type_matches(pattern, event_type) is expected


@pytest.mark.parametrize(
    ("wanted", "source", "expected"),
    [
        (None, "anything", True),
        ("dgt", "dgt", True),
        ("dgt", "dgt/madrid", True),
        ("dgt", "dgtx", False),
        ("dgt", "aeat", False),
        ("dgt/madrid", "dgt", False),
    ],
)
def test_source_is_equal_or_a_sub_source(wanted, source, expected):
    assert flows.source_matches(wanted, source) is expected


def test_match_applies_type_source_condition_and_enabled():
    rules = [
        make_rule(id="any"),
        make_rule(id="glob", on="license.*"),
        make_rule(id="other-type", on="tax.*"),
        make_rule(id="dgt-only", source="dgt"),
        make_rule(id="aeat-only", source="aeat"),
        make_rule(id="category-b", when='data.category == "B"'),
        make_rule(id="category-c", when='data.category == "C"'),
        make_rule(id="off", enabled=False),
    ]
    event = make_event(source="dgt/madrid", category="B")
    assert matched_ids(rules, event) == ["any", "glob", "dgt-only", "category-b"]


def test_condition_sees_every_event_attribute():
    rule = make_rule(
        when='type == "license.expiring" && source == "dgt" && id == "e1" '
        '&& subject.startsWith("license/") && data.citizen.locale == "es" '
        '&& time < timestamp("2027-01-01T00:00:00Z")'
    )
    assert matched_ids([rule], make_event(id="e1")) == ["licencia-aviso"]
    assert matched_ids([rule], make_event(id="e2")) == []


def test_a_failing_condition_is_reported_not_matched():
    broken = make_rule(id="missing-field", when="data.nope == 1")
    typed = make_rule(id="not-boolean", when="data.expires_on")
    fine = make_rule(id="fine")
    result = flows.match([broken, typed, fine], make_event(), now=NOW)
    assert [c.rule.id for c in result.rules] == ["fine"]
    assert {c.rule.id for c, _ in result.errors} == {"missing-field", "not-boolean"}
    assert "not true or false" in {c.rule.id: e for c, e in result.errors}["not-boolean"]


def test_has_guards_a_missing_field():
    rule = make_rule(when='has(data.category) && data.category == "B"')
    assert matched_ids([rule], make_event()) == []
    assert matched_ids([rule], make_event(category="B")) == ["licencia-aviso"]


def test_bad_cel_does_not_compile():
    with pytest.raises(ConditionError, match="Syntax error"):
        flows.compile_condition("data.category ==")


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        ("2026-11-29T10:00:00+00:00", "P2D", "2026-12-01T10:00:00+00:00"),
        ("2026-11-29T10:00:00+00:00", "PT36H", "2026-11-30T22:00:00+00:00"),
        ("2027-01-31T10:00:00+00:00", "P1M", "2027-02-28T10:00:00+00:00"),
        ("2027-01-15T10:00:00+00:00", "-P30D", "2026-12-16T10:00:00+00:00"),
        ("2027-01-15T00:00:00+00:00", "-P1Y2M", "2025-11-15T00:00:00+00:00"),
    ],
)
def test_shift_by_a_signed_duration(start, duration, expected):
    moved = flows.shift(datetime.fromisoformat(start), parse_duration(duration))
    assert moved == datetime.fromisoformat(expected)


def test_plan_now_makes_a_rendered_request_with_a_deterministic_id():
    compiled = make_rule(version=3)
    event = make_event()
    [planned] = flows.plan(
        [compiled], {"licencia-renovacion": make_template()}, event, renderer=RENDERER, now=NOW
    )
    request = planned.request
    assert request is not None and planned.failure is None
    assert request.id == notification_id(
        rule_id="licencia-aviso",
        rule_version=3,
        source="dgt",
        event_id="dgt-2026-000123",
        step="now",
    )
    assert request.rule.version == 3
    assert request.content.sms is not None
    assert "15 de enero de 2027" in request.content.sms.body
    assert request.content.email is not None
    assert request.locale == "es"
    assert [str(c) for c in request.channels] == ["sms", "email"]
    assert request.delivery == "all"
    assert request.not_after == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert request.citizen.id == "ES-12345678Z"
    assert request.event.subject == "license/B-12345678"


def test_only_the_channels_of_the_rule_are_rendered():
    [planned] = flows.plan(
        [make_rule(channels=["email"])],
        {"licencia-renovacion": make_template()},
        make_event(),
        renderer=RENDERER,
        now=NOW,
    )
    assert planned.request is not None
    assert planned.request.content.sms is None
    assert planned.request.content.email is not None


def test_a_template_that_fails_becomes_a_failed_status():
    template = make_template(es={"sms": "{{ data.missing_field }}"})
    [planned] = flows.plan(
        [make_rule(channels=["sms"])],
        {"licencia-renovacion": template},
        make_event(),
        renderer=RENDERER,
        now=NOW,
    )
    assert planned.request is None and planned.failure is not None
    assert planned.failure.status == Status.FAILED
    assert "missing_field" in (planned.failure.detail or "")
    assert planned.failure.rule == "licencia-aviso"


def test_a_missing_template_becomes_a_failed_status():
    [planned] = flows.plan([make_rule()], {}, make_event(), renderer=RENDERER, now=NOW)
    assert planned.failure is not None
    assert "does not exist" in (planned.failure.detail or "")


def test_rules_with_a_schedule_are_left_to_timers():
    reminder = make_rule(schedule={"relative_to": "data.expires_on", "offsets": ["-P7D"]})
    plans = flows.plan(
        [reminder],
        {"licencia-renovacion": make_template()},
        make_event(),
        renderer=RENDERER,
        now=NOW,
    )
    assert plans == []


def test_an_event_without_time_expires_from_now():
    [planned] = flows.plan(
        [make_rule()],
        {"licencia-renovacion": make_template()},
        make_event(time=None),
        renderer=RENDERER,
        now=NOW,
    )
    assert planned.request is not None
    assert planned.request.not_after == datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("critical", [True, False])
def test_critical_and_not_after_travel_on_immediate_and_reminder_requests(critical):
    template = make_template()
    [now_plan] = flows.plan(
        [make_rule(critical=critical)],
        {"licencia-renovacion": template},
        make_event(),
        renderer=RENDERER,
        now=NOW,
    )
    schedule = {"relative_to": "data.expires_on", "offsets": ["-P7D"], "at": "09:00"}
    reminder_rule = make_rule(critical=critical, schedule=schedule)
    plan = reminders.plan_reminders(
        reminder_rule,
        template,
        make_event(),
        renderer=RENDERER,
        default_zone="Europe/Madrid",
        now=NOW,
    )
    [reminder] = plan.reminders

    assert now_plan.request is not None
    assert now_plan.request.critical is critical
    assert now_plan.request.not_after == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert reminder.request.critical is critical
    assert reminder.request.scheduled_for == datetime(2027, 1, 8, 8, 0, tzinfo=UTC)
    # a reminder's not_after is its deadline: the end of 2027-01-15 in Madrid
    assert reminder.request.not_after == datetime(2027, 1, 15, 23, 0, tzinfo=UTC)


def test_the_condition_context_is_built_once_per_event(monkeypatch):
    built = []
    real = flows.activation

    def counted(event, *, now):
        built.append(event.id)
        return real(event, now=now)

    monkeypatch.setattr(flows, "activation", counted)
    rules = [
        make_rule(id=f"r{n}", when=f'data.category == "{c}"') for n, c in enumerate("ABBC")
    ] + [make_rule(id="plain")]

    matched = sorted(matched_ids(rules, make_event(category="B")))
    assert matched == ["plain", "r1", "r2"]
    assert len(built) == 1
    assert matched_ids([make_rule(id="plain")], make_event()) == ["plain"]
    assert len(built) == 1  # no condition, no context


def test_the_topic_travels_on_immediate_and_reminder_requests():
    labels = {"es": "Renovaciones", "en": "Renewals"}
    template = make_template()
    [now_plan] = flows.plan(
        [make_rule(topic="renovaciones", topic_labels=labels)],
        {"licencia-renovacion": template},
        make_event(),
        renderer=RENDERER,
        now=NOW,
    )
    schedule = {"relative_to": "data.expires_on", "offsets": ["-P7D"], "at": "09:00"}
    plan = reminders.plan_reminders(
        make_rule(topic="renovaciones", topic_labels=labels, schedule=schedule),
        template,
        make_event(),
        renderer=RENDERER,
        default_zone="Europe/Madrid",
        now=NOW,
    )
    assert now_plan.request is not None
    for request in (now_plan.request, plan.reminders[0].request):
        assert (request.topic, request.topic_labels) == ("renovaciones", labels)
    assert make_rule().rule.topic is None


def test_a_topic_must_be_a_slug():
    with pytest.raises(ValueError, match="slug"):
        make_rule(topic="Renovaciones!")


def test_preferences_url_renders_as_a_placeholder_as_long_as_a_real_link():
    template = make_template(es={"sms": "Gestiona tus avisos: {{ preferences_url }}"})
    [rendered] = flows.preview(template, make_event(), renderer=RENDERER, now=NOW).values()
    assert rendered.sms is not None
    assert rendered.sms.body == f"Gestiona tus avisos: {PREFERENCES_URL_PLACEHOLDER}"
    assert len(PREFERENCES_URL_PLACEHOLDER) == 120  # about a real link's length
    assert sms_length(rendered.sms.body).characters == 21 + 120
    longer = make_template(es={"sms": "x" * 40 + " {{ preferences_url }}"})
    [rendered] = flows.preview(longer, make_event(), renderer=RENDERER, now=NOW).values()
    assert rendered.sms is not None and sms_length(rendered.sms.body).segments == 2
