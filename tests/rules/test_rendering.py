from datetime import UTC, datetime

import pytest

from schemas.notifications import Channel
from services.rules.errors import RenderError
from services.rules.flows import template_variables
from services.rules.rendering import Renderer, choose_locale, html_from_text
from tests.rules.factories import make_event, make_template

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
BOTH = [Channel.SMS, Channel.EMAIL]


def renderer(default_locale="es"):
    return Renderer(default_locale=default_locale, default_timezone="Europe/Madrid")


def variables(**event):
    return template_variables(make_event(**event), notification={"id": "n-1"}, now=NOW)


def text(source, *, locale="es", html=False, **event):
    scope = {**variables(**event), "locale": locale}
    return renderer().render_text(source, scope, path="t", html=html)


@pytest.mark.parametrize(
    ("available", "wanted", "default", "expected"),
    [
        (["es", "en"], "en", "es", "en"),
        (["es", "en"], "es-ES", "en", "es"),
        (["es-ES", "en"], "es-es", "en", "es-ES"),
        (["es-ES", "en"], "es", "en", "es-ES"),
        (["es", "en"], "fr", "en", "en"),
        (["es", "en"], None, "es", "es"),
        (["en", "ca"], "fr", "es", "en"),
        (["ca"], None, "es", "ca"),
    ],
)
def test_locale_choice(available, wanted, default, expected):
    assert choose_locale(available, wanted, default) == expected


def test_renders_in_the_citizens_locale():
    rendered = renderer().render(
        make_template(), variables(citizen={"locale": "en"}), channels=BOTH, wanted_locale="en"
    )
    assert rendered.locale == "en"
    assert rendered.content.sms is not None
    assert rendered.content.sms.body == "Hi Ana, your licence expires on January 15, 2027."
    assert rendered.content.email is not None
    assert rendered.content.email.subject == "Your licence expires on January 15, 2027"


def test_falls_back_to_the_default_locale():
    rendered = renderer("en").render(
        make_template(), variables(), channels=BOTH, wanted_locale="fr"
    )
    assert rendered.locale == "en"


def test_fecha_in_spanish_and_english():
    assert text("{{ data.expires_on | fecha }}") == "15 de enero de 2027"
    assert text("{{ data.expires_on | fecha }}", locale="en") == "January 15, 2027"
    assert text("{{ data.expires_on | fecha('short') }}", locale="en") == "1/15/27"


def test_fecha_of_a_datetime_uses_the_citizens_zone():
    # 23:30 UTC on 31 December is already 1 January in Madrid.
    assert text("{{ data.at | fecha }}", at="2026-12-31T23:30:00Z") == "1 de enero de 2027"
    assert text("{{ time | fecha }}", time="2026-12-31T23:30:00Z") == "1 de enero de 2027"


def test_numero_uses_the_locales_separators():
    assert text("{{ data.amount | numero(2) }}", amount=1234567.5) == "1.234.567,50"
    assert text("{{ data.amount | numero(2) }}", locale="en", amount=1234567.5) == "1,234,567.50"


def test_fecha_rejects_what_is_not_a_date():
    with pytest.raises(RenderError, match="fecha needs a date"):
        text("{{ data.expires_on | fecha }}", expires_on="soon")


def test_undefined_variables_are_errors():
    with pytest.raises(RenderError, match="missing"):
        text("{{ data.missing }}")
    with pytest.raises(RenderError, match="nmae"):
        text("{{ citizen.nmae }}")


def test_missing_optional_citizen_fields_render_empty():
    assert text("[{{ citizen.name }}]", citizen={"name": None}) == "[]"


def test_the_sandbox_refuses_internals():
    with pytest.raises(RenderError, match="unsafe"):
        text("{{ ''.__class__ }}")
    with pytest.raises(RenderError, match="unsafe"):
        text("{{ data.citizen.__class__.__mro__ }}")


def test_the_sandbox_refuses_mutation():
    with pytest.raises(RenderError):
        text("{{ data.citizen.update({'id': 'x'}) }}")


def test_syntax_errors_name_the_line():
    with pytest.raises(RenderError, match="line 2"):
        text("ok\n{{ citizen.name ")


def test_only_html_is_autoescaped():
    event = {"citizen": {"name": "<b>Ana</b>"}}
    assert text("{{ citizen.name }}", **event) == "<b>Ana</b>"
    assert text("{{ citizen.name }}", html=True, **event) == "&lt;b&gt;Ana&lt;/b&gt;"


def test_html_is_derived_from_text_when_absent():
    template = make_template(
        es={
            "email_subject": "Aviso",
            "email_text": "Hola {{ citizen.name }}:\n\nLínea 1\nVer https://sede.dgt.es.",
        }
    )
    rendered = renderer().render(
        template, variables(citizen={"name": "A&B"}), channels=[Channel.EMAIL], wanted_locale="es"
    )
    assert rendered.content.email is not None
    assert rendered.content.email.html == (
        "<p>Hola A&amp;B:</p>\n"
        '<p>Línea 1<br>\nVer <a href="https://sede.dgt.es">https://sede.dgt.es</a>.</p>'
    )


def test_html_from_text_escapes():
    assert html_from_text("<script>x</script>") == "<p>&lt;script&gt;x&lt;/script&gt;</p>"


def test_a_channel_without_text_in_the_locale_fails():
    template = make_template(es={"sms": "hola"})
    with pytest.raises(RenderError, match="email_subject"):
        renderer().render(template, variables(), channels=BOTH, wanted_locale="es")
