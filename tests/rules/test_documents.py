from pathlib import Path

import pytest

from schemas.documents import load_documents
from schemas.notifications import Channel
from services.rules.documents import check_rule, check_template, parse_rule, parse_template
from services.rules.errors import DocumentInvalid
from services.rules.rendering import Renderer
from tests.rules.factories import make_template, rule_body, template_body

EXAMPLES = Path(__file__).parents[2] / "examples"
RENDERER = Renderer(default_locale="es", default_timezone="Europe/Madrid")


def rule_errors(body, template=None, path_id="licencia-aviso"):
    with pytest.raises(DocumentInvalid) as caught:
        check_rule(parse_rule(body, path_id), template)
    return {e.path: e.message for e in caught.value.errors}


def template_errors(locales, users=None):
    with pytest.raises(DocumentInvalid) as caught:
        check_template(parse_template({"locales": locales}, "t"), RENDERER, users or {})
    return {e.path: e.message for e in caught.value.errors}


def test_a_good_rule_passes():
    check_rule(parse_rule(rule_body(), "licencia-aviso"), make_template())


def test_the_body_id_defaults_to_the_url_and_must_agree():
    body = rule_body()
    del body["id"]
    assert parse_rule(body, "licencia-aviso").id == "licencia-aviso"
    assert "differs" in rule_errors(rule_body(id="other"), make_template())["id"]


def when_errors(expression):
    with pytest.raises(DocumentInvalid) as caught:
        check_rule(parse_rule(rule_body(when=expression), "licencia-aviso"), make_template())
    return [e.message for e in caught.value.errors if e.path == "when"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("data.category ==", ["line 1, column 17: ", "Syntax error"]),
        ('data.category == "B" &&\n  citizen.id == "x"', ["line 2, column 3: ", "'citizen'"]),
        ("now > time", ["line 1, column 1: ", "'now' is not a field of the event"]),
        ("data.items.map(x, x * 2).size() > 0", ["line 1, column 12: ", "'map' is not allowed"]),
        ("data.items.filter(x, x > 1) == []", ["line 1, column 12: ", "'filter'"]),
        ("[1, 2].all(x, x > 0)", ["line 1, column 8: ", "'all'"]),
        ("data.items.exists(x, x == 1)", ["line 1, column 12: ", "'exists'"]),
        ("data.items.exists_one(x, x == 1)", ["line 1, column 12: ", "'exists_one'"]),
    ],
)
def test_a_condition_is_refused_where_it_errs_reads_beyond_the_event_or_iterates(
    expression, expected
):
    (message,) = when_errors(expression)
    for words in expected:
        assert words in message, message


def test_a_condition_may_read_every_event_field_and_call_functions():
    expression = (
        'has(data.category) && data.category in ["B", "C"] && subject.startsWith("license/") '
        '&& type == "license.expiring" && source != id && timestamp(time) > timestamp('
        '"2020-01-01T00:00:00Z") && "citizen.map(x, y)" != data.category && data.map == 1'
    )
    check_rule(parse_rule(rule_body(when=expression), "licencia-aviso"), make_template())


@pytest.mark.parametrize(
    ("fields", "path", "words"),
    [
        ({"when": "data.category =="}, "when", "Syntax error"),
        ({"expires_after": "two days"}, "expires_after", "ISO-8601"),
        ({"expires_after": "-P2D"}, "expires_after", "positive"),
        ({"id": "Licencia_Aviso"}, "id", "slug"),
        ({"template": "Bad Slug"}, "template", "slug"),
        ({"channels": ["fax"]}, "channels[0]", "sms"),
        ({"channels": []}, "channels", "at least 1"),
        ({"delivery": "some"}, "delivery", "first"),
        ({"unknown": 1}, "unknown", "not permitted"),
        (
            {"schedule": {"relative_to": "data.x", "offsets": ["-P1Q"]}},
            "schedule.offsets[0]",
            "ISO-8601",
        ),
        (
            {"schedule": {"relative_to": "expires", "offsets": ["-P1D"]}},
            "schedule.relative_to",
            "data.expires_on",
        ),
        (
            {"schedule": {"relative_to": "data.x", "offsets": ["-P1D"], "at": "9am"}},
            "schedule.at",
            "09:00",
        ),
    ],
)
def test_bad_rules_name_the_field(fields, path, words):
    errors = rule_errors(
        rule_body(**fields), make_template(), path_id=fields.get("id", "licencia-aviso")
    )
    assert path in errors, errors
    assert words in errors[path]


def test_a_missing_template_is_named():
    assert "no template" in rule_errors(rule_body(), None)["template"]


def test_a_template_lacking_a_channels_text_is_named():
    errors = rule_errors(rule_body(), make_template(es={"sms": "hola"}))
    assert "locales.es.email_subject" in errors["channels"]


def test_a_good_template_passes():
    check_template(make_template(), RENDERER, {"r": [Channel.SMS, Channel.EMAIL]})


def test_unknown_data_fields_do_not_reject_a_template():
    check_template(
        parse_template(
            {
                "locales": {
                    "es": {
                        "sms": "{{ data.anything.deep | fecha }} {{ data.amount | numero(2) }} "
                        "{{ data.n * 2 + 1 }} {% if data.score > 3 %}x{% endif %}"
                        "{% for item in data.items_list %}{{ item }}{% endfor %}"
                        "{{ data.citizen.name }} {{ subject }} {{ type }} {{ time | fecha }}"
                        " {{ source }}"
                        " {{ id }} {{ notification.id }} {{ data.name | upper }}"
                    }
                }
            },
            "t",
        ),
        RENDERER,
        {},
    )


@pytest.mark.parametrize(
    ("sms", "words"),
    [
        ("{{ citizen.nmae }}", "nmae"),
        ("{{ notification.url }}", "url"),
        ("{{ data.citizen.nmae }}", "nmae"),
        ("{{ unknown_variable }}", "unknown_variable"),
        ("{{ citizen.name ", "line 1"),
        ("{{ ''.__class__ }}", "unsafe"),
        ("{{ citizen.name | no_such_filter }}", "no_such_filter"),
    ],
)
def test_bad_templates_name_the_text(sms, words):
    errors = template_errors({"es": {"sms": sms}})
    assert words in errors["locales.es.sms"]


def test_template_structure_errors():
    assert "BCP 47" in template_errors({"es_ES!": {"sms": "x"}})["locales.es_ES!"]
    assert "at least one" in template_errors({"es": {}})["locales.es"]
    assert "together" in template_errors({"es": {"email_subject": "x"}})["locales.es"]
    assert (
        "email_text"
        in template_errors({"es": {"sms": "x", "email_html": "<p>x</p>"}})["locales.es.email_text"]
    )


def test_a_template_must_keep_the_texts_its_rules_use():
    errors = template_errors({"es": {"sms": "hola"}}, users={"licencia-aviso": [Channel.EMAIL]})
    assert "licencia-aviso" in errors["locales.es.email_subject"]


def test_the_examples_are_valid_and_match_each_other():
    templates = {}
    for path in sorted((EXAMPLES / "templates").glob("*.yaml")):
        for document in load_documents(path.read_text()):
            template = parse_template(document, document["id"])
            check_template(template, RENDERER, {})
            templates[template.id] = template
    rules = {}
    for path in sorted((EXAMPLES / "rules").glob("*.yaml")):
        for document in load_documents(path.read_text()):
            rule = parse_rule(document, document["id"])
            check_rule(rule, templates.get(rule.template))
            rules[rule.id] = rule
    assert rules["licencia-aviso"].enabled and rules["licencia-aviso"].schedule is None
    reminders = rules["licencia-renovacion"]
    assert reminders.enabled and reminders.schedule is not None
    assert reminders.schedule.calendar == "ES" and reminders.cancel_on == ["license.renewed"]
    assert set(templates["licencia-renovacion"].locales) == {"es", "en"}


def test_template_body_factory_is_valid():
    parse_template(template_body(), "licencia-renovacion")
