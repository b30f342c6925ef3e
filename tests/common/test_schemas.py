import pytest
from pydantic import ValidationError

from common.problems import validation_problem
from schemas.documents import load_documents
from schemas.durations import parse_duration
from schemas.events import CloudEvent
from schemas.notifications import notification_id
from schemas.rules import Rule


def make_event(**overrides):
    event = {
        "specversion": "1.0",
        "id": "dgt-1",
        "source": "dgt",
        "type": "license.expiring",
        "subject": "license/B-1",
        "data": {
            "citizen": {
                "id": "ES-1",
                "phone": "+34600111222",
                "email": "ana@example.es",
                "locale": "es",
                "timezone": "Europe/Madrid",
            }
        },
    }
    event.update(overrides)
    return event


def paths_of(error: ValidationError) -> list[str]:
    return [item["path"] for item in validation_problem(list(error.errors())).errors or []]


def test_the_contract_example_is_valid_and_keeps_extra_data():
    event = CloudEvent.model_validate(
        make_event(data={**make_event()["data"], "expires_on": "2027-01-15"})
    )
    assert event.to_wire()["data"]["expires_on"] == "2027-01-15"


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("phone", "612", "data.citizen.phone"),
        ("phone", "+34000", "data.citizen.phone"),
        ("email", "ana@", "data.citizen.email"),
        ("locale", "spanish!", "data.citizen.locale"),
        ("timezone", "Mars/Olympus", "data.citizen.timezone"),
    ],
)
def test_bad_citizen_fields_are_named_by_path(field, value, path):
    event = make_event()
    event["data"]["citizen"][field] = value
    with pytest.raises(ValidationError) as error:
        CloudEvent.model_validate(event)
    assert paths_of(error.value) == [path]


def test_required_attributes_are_named():
    event = make_event()
    del event["subject"]
    del event["data"]["citizen"]["id"]
    with pytest.raises(ValidationError) as error:
        CloudEvent.model_validate(event)
    assert sorted(paths_of(error.value)) == ["data.citizen.id", "subject"]


def test_only_cloudevents_1_0_and_aware_times():
    with pytest.raises(ValidationError):
        CloudEvent.model_validate(make_event(specversion="0.3"))
    with pytest.raises(ValidationError):
        CloudEvent.model_validate(make_event(time="2026-11-29T10:00:00"))


def test_notification_ids_are_deterministic_and_distinct_per_step():
    first = notification_id(rule_id="r", rule_version=1, source="dgt", event_id="e", step="now")
    again = notification_id(rule_id="r", rule_version=1, source="dgt", event_id="e", step="now")
    other = notification_id(rule_id="r", rule_version=1, source="dgt", event_id="e", step="-P7D")
    assert first == again != other


def test_durations_are_signed_iso_8601():
    assert parse_duration("-P30D").sign == -1
    assert parse_duration("PT2H").hours == 2
    assert parse_duration("P1Y2M").months == 2
    for bad in ("P", "30D", "-PT", "P1H"):
        with pytest.raises(ValueError, match="ISO-8601"):
            parse_duration(bad)


def test_rule_yaml_keeps_the_on_key():
    [document] = load_documents("id: aviso\non: license.expiring\ntemplate: aviso\n")
    rule = Rule.model_validate(document)
    assert rule.on == "license.expiring"
