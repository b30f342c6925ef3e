"""Templates cannot run away (a render budget) and derived HTML links only what they write."""

import time

import pytest

from schemas.notifications import Channel
from services.rules import flows
from services.rules.budget import Limits
from services.rules.errors import RenderError
from services.rules.rendering import Renderer
from tests.rules.factories import make_event, make_rule, make_template

RENDERER = Renderer(default_locale="es", default_timezone="Europe/Madrid")
SCOPE = {"citizen": {"name": "Ana"}, "data": {}, "locale": "es"}

RUNAWAYS = {
    "nested loops": "{% for i in range(3000) %}{% for j in range(1000) %}x{% endfor %}{% endfor %}",
    "a macro calling itself": "{% macro a() %}{{ a() }}{% endmacro %}{{ a() }}",
    "calls doubling per level": (
        "{% macro a(n) %}{% if n %}{{ a(n - 1) }}{{ a(n - 1) }}{% endif %}{% endmacro %}{{ a(40) }}"
    ),
    "a huge repetition": "{{ 'x' * 100000000 }}",
    "a huge power": "{{ 10 ** 100000000 }}",
    "a filter asked for a huge width": "{{ citizen.name | center(1000000000) }}",
    "a huge printf field": "{{ '%01000000000d' % 1 }}",
    "a huge format field": "{{ '{:>1000000000}'.format(citizen.name) }}",
}


@pytest.mark.parametrize("source", RUNAWAYS.values(), ids=RUNAWAYS.keys())
def test_a_runaway_template_stops_with_a_render_error_quickly(source):
    started = time.monotonic()
    with pytest.raises(RenderError) as raised:
        RENDERER.render_text(source, SCOPE, path="locales.es.sms")
    assert time.monotonic() - started < 2.0
    assert raised.value.path == "locales.es.sms"


def test_ordinary_filters_and_formats_still_work():
    scope = {**SCOPE, "data": {"amount": 1234567.5}}
    source = (
        "{{ data.amount | numero(2) }} {{ '%.1f' % data.amount }} {{ citizen.name | center(7) }}"
    )
    assert RENDERER.render_text(source, scope, path="t") == "1.234.567,50 1234567.5   Ana"


def test_the_budget_is_per_render_and_ordinary_loops_fit():
    source = "{% for i in range(50) %}{{ loop.index }}{% endfor %}"
    for _ in range(3):  # the steps of one render are not carried into the next
        assert RENDERER.render_text(source, SCOPE, path="t").endswith("4950")
    small = Renderer(
        default_locale="es", default_timezone="Europe/Madrid", limits=Limits(max_steps=20)
    )
    with pytest.raises(RenderError, match="more than 20 steps"):
        small.render_text(source, SCOPE, path="t")


def test_an_over_budget_template_fails_only_its_rule_for_an_event():
    looping = make_template(es={"sms": RUNAWAYS["nested loops"]})
    failed, ok = flows.plan(
        [make_rule(id="bucle", template="bucle", channels=["sms"]), make_rule(channels=["sms"])],
        {"bucle": looping, "licencia-renovacion": make_template()},
        make_event(),
        renderer=RENDERER,
        now=make_event().time,
    )
    assert failed.failure is not None and "steps" in (failed.failure.detail or "")
    assert ok.request is not None


def email_html(text: str, **data) -> str:
    template = make_template(es={"email_subject": "Aviso", "email_text": text})
    variables = flows.template_variables(
        make_event(**data), notification={"id": "n"}, now=make_event().time
    )
    rendered = RENDERER.render(
        template, variables, channels=[Channel.EMAIL], wanted_locale="es"
    ).content.email
    assert rendered is not None
    return rendered.html


def test_derived_html_links_only_the_urls_the_template_writes():
    html = email_html(
        "Renueva en https://sede.dgt.es. Motivo: {{ data.reason }}",
        reason="visita https://evil.example/login",
    )
    assert '<a href="https://sede.dgt.es">https://sede.dgt.es</a>' in html
    assert "evil.example/login" in html
    assert 'href="https://evil.example' not in html


def test_a_written_url_may_end_in_data_but_the_host_is_the_templates():
    html = email_html("Tu trámite: https://sede.dgt.es/t/{{ data.case }}", case="B-1")
    assert '<a href="https://sede.dgt.es/t/B-1">' in html
    hijacked = email_html("Entra en https://sede.dgt.es{{ data.rest }}", rest=".evil.example/x")
    assert "href" not in hijacked
