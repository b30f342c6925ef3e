"""The rule form's pure parts: fields to document and back, YAML, errors to fields."""

from __future__ import annotations

import pytest

from services.console import ruleforms

STORED = {
    "id": "aviso",
    "description": "Aviso",
    "enabled": True,
    "on": "license.expiring",
    "schedule": {"relative_to": "data.expires_on", "offsets": ["-P30D"], "calendar": "ES"},
    "channels": ["sms", "email"],
    "delivery": "all",
    "template": "aviso",
    "expires_after": "P2D",
}


def test_the_form_round_trips_and_keeps_the_fields_it_does_not_show():
    form = ruleforms.rule_form(STORED)
    assert form["offsets"] == "-P30D" and form["calendar"] == "ES"
    document = ruleforms.rule_document({**form, "offsets": "-P7D,  -P1D", "enabled": ""}, STORED)
    assert document["schedule"] == {
        "relative_to": "data.expires_on",
        "offsets": ["-P7D", "-P1D"],
        "calendar": "ES",
    }
    assert document["delivery"] == "all" and document["expires_after"] == "P2D"
    assert document["enabled"] is False


def test_empty_schedule_fields_mean_no_schedule_and_empty_optionals_are_left_out():
    form = {**ruleforms.rule_form(STORED), "relative_to": "", "offsets": "", "calendar": ""}
    document = ruleforms.rule_document({**form, "when": "  ", "source": ""}, STORED)
    assert "schedule" not in document and "when" not in document and "source" not in document


def test_yaml_reads_on_as_a_key_and_names_the_line_of_a_mistake():
    assert ruleforms.parse_yaml(ruleforms.as_yaml(STORED)) == STORED
    with pytest.raises(ValueError, match="line 2"):
        ruleforms.parse_yaml("id: a\non: x: y\n")
    with pytest.raises(ValueError, match="exactly one"):
        ruleforms.parse_yaml("id: a\n---\nid: b\n")


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("when", "when"),
        ("rule.when", "when"),
        ("schedule.offsets.1", "offsets"),
        ("schedule.at", "at"),
        ("schedule.calendar", "calendar"),
        ("template", "template"),
        ("expires_after", "id"),
    ],
)
def test_each_api_error_goes_beside_its_field(path, field):
    assert ruleforms.rule_field(path) == field


def test_a_cel_error_carries_its_line_and_column():
    problem = {"errors": [{"path": "when", "message": "bad", "line": 2, "column": 5}]}
    placed = ruleforms.placed(
        problem, ruleforms.rule_field, line_word="línea", column_word="columna"
    )
    assert placed == {"when": "bad (línea 2, columna 5)"}


def test_the_line_and_column_are_not_said_twice():
    item = {"path": "when", "message": "bad at line 2, column 5", "line": 2, "column": 5}
    assert ruleforms.error_text(item, line_word="line", column_word="column") == item["message"]
