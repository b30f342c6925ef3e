"""The rule screens: list, page, create and edit by fields or YAML, errors beside their field,
enable and disable with a confirmation, try it; both languages; editors only their agency's."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.console.conftest import csrf_of, post_form, sign_in
from tests.console.pages import check_page, text_of
from tests.events.conftest import ADMIN
from tests.rules.factories import event_body, rule_body, template_body

ENGLISH = {"Accept-Language": "en-GB,en;q=0.9"}


@pytest.fixture(scope="module")
def world(backends):
    """An agency, a template, and a reminder rule of that agency holding markup."""
    agency = f"ag-{uuid.uuid4().hex[:6]}"
    backends.events.post("/v1/agencies", json={"id": agency, "name": "Tráfico"}, headers=ADMIN)
    template = template_body(id=f"tpl-{uuid.uuid4().hex[:6]}")
    backends.rules.put(f"/v1/templates/{template['id']}", json=template, headers=ADMIN)
    rule = rule_body(
        id=f"rule-{uuid.uuid4().hex[:6]}",
        template=template["id"],
        description="<script>alert(1)</script> aviso",
        source=agency,
        schedule={
            "relative_to": "data.expires_on",
            "offsets": ["-P30D"],
            "at": "09:00",
            "calendar": "ES",
        },
        cancel_on=["license.renewed"],
    )
    assert backends.rules.put(f"/v1/rules/{rule['id']}", json=rule, headers=ADMIN).is_success
    return {"agency": agency, "template": template["id"], "rule": rule["id"]}


def form_of(world, **changes):
    fields = {
        "id": f"new-{uuid.uuid4().hex[:6]}",
        "description": "Aviso nuevo",
        "on": "license.expiring",
        "source": world["agency"],
        "when": "",
        "channels": ["sms"],
        "template": world["template"],
        "relative_to": "data.expires_on",
        "offsets": "-P7D, -P1D",
        "at": "09:00",
        "calendar": "",
        "cancel_on": "license.renewed",
        "enabled": "true",
        "yaml": "",
        "yaml_original": "",
    }
    fields.update(changes)
    return fields


def stored(backends, rule_id):
    return backends.rules.get(f"/v1/rules/{rule_id}", headers=ADMIN).json()


@pytest.mark.parametrize(("headers", "language"), [({}, "es"), (ENGLISH, "en")])
def test_every_rule_page_is_well_formed_in_both_languages(
    client, account, world, headers, language
):
    sign_in(client, account())
    rule = world["rule"]
    for path in (
        "/rules",
        "/rules/new",
        f"/rules/{rule}",
        f"/rules/{rule}/edit",
        f"/rules/{rule}/enabled",
    ):
        response = client.get(path, headers=headers)
        assert response.status_code == 200, path
        page = check_page(response, language=language)
        assert "<script>alert(1)</script>" not in response.text, path
    assert ("Reminders pending" if language == "en" else "Recordatorios pendientes") in text_of(
        check_page(client.get("/rules", headers=headers), language=language)
    )
    assert page is not None


def test_the_list_names_pending_reminders_and_who_changed_it_last(client, account, world):
    sign_in(client, account())
    page = check_page(client.get("/rules", headers=ENGLISH), language="en")
    headers = [" ".join(th.itertext()).strip() for th in page.iter("th")]
    assert headers == [
        "Id",
        "Description",
        "Event type",
        "Enabled",
        "Channels",
        "Reminders pending",
        "Last change",
    ]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; aviso" in client.get("/rules").text


def test_a_rule_created_from_the_form_is_saved_as_a_version(client, account, world, backends):
    person = account()
    sign_in(client, person)
    form = form_of(world)
    answer = post_form(client, "/rules/new", "/rules/new", form, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    record = stored(backends, form["id"])
    assert record["version"] == 1 and record["updated_by"].endswith(person.email)
    assert record["document"]["schedule"]["offsets"] == ["-P7D", "-P1D"]
    assert record["document"]["channels"] == ["sms"] and record["document"]["cancel_on"] == [
        "license.renewed"
    ]
    assert "Guardado como versión 1" in client.get(answer.headers["location"]).text


def test_a_broken_condition_is_shown_beside_its_field_with_line_and_column(client, account, world):
    sign_in(client, account())
    form = form_of(world, when='data.category ==\n  ("B"')
    answer = post_form(client, "/rules/new", "/rules/new", form, headers=ENGLISH)
    assert answer.status_code == 422
    page = check_page(answer, language="en")
    summary = page.find(".//*[@class='govuk-error-summary']")
    assert summary is not None and summary.find(".//*[@role='alert']") is not None
    assert 'href="#rule-when"' in answer.text
    error = page.find(".//*[@id='rule-when-error']")
    assert error is not None and "line 2, column" in text_of(error)
    assert 'value="Aviso nuevo"' in answer.text  # the form again, as typed


def test_a_rule_saved_as_yaml_is_the_same_document_as_the_api(client, account, world, backends):
    sign_in(client, account())
    rule = f"yaml-{uuid.uuid4().hex[:6]}"
    body = stored(backends, world["rule"])["document"]
    backends.rules.put(f"/v1/rules/{rule}", json={**body, "id": rule}, headers=ADMIN)
    edit = client.get(f"/rules/{rule}/edit")
    original = stored(backends, rule)
    page = check_page(edit, language="es")
    yaml_text = page.find(".//textarea[@id='rule-yaml']").text
    changed = yaml_text.replace("-P30D", "-P20D")
    assert changed != yaml_text
    token = csrf_of(edit.text)
    answer = client.post(
        f"/rules/{rule}/edit",
        data={
            **form_of(world, id=rule),
            "yaml": changed,
            "yaml_original": yaml_text,
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    record = stored(backends, rule)
    assert record["version"] == original["version"] + 1
    assert record["document"]["schedule"]["offsets"] == ["-P20D"]
    assert record["document"]["description"] == original["document"]["description"]


def test_bad_yaml_is_named_beside_the_yaml_field(client, account, world):
    sign_in(client, account())
    form = form_of(world, yaml="id: [unclosed\n", yaml_original="id: x\n")
    answer = post_form(client, "/rules/new", "/rules/new", form)
    assert answer.status_code == 422 and 'href="#rule-yaml"' in answer.text
    assert check_page(answer, language="es").find(".//*[@id='rule-yaml-error']") is not None


def test_disabling_asks_first_and_says_how_many_reminders_it_cancels(
    client, account, world, backends
):
    sign_in(client, account())
    rule = world["rule"]
    pending = stored(backends, rule)["pending_reminders"]
    confirm = check_page(client.get(f"/rules/{rule}/enabled", headers=ENGLISH), language="en")
    assert f"Disabling it cancels {pending} pending reminder" in text_of(confirm)
    assert stored(backends, rule)["document"].get("enabled", True) is True
    answer = post_form(
        client,
        f"/rules/{rule}/enabled",
        f"/rules/{rule}/enabled",
        {"enabled": "false"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert stored(backends, rule)["document"]["enabled"] is False
    post_form(client, f"/rules/{rule}/enabled", f"/rules/{rule}/enabled", {"enabled": "true"})
    assert stored(backends, rule)["document"]["enabled"] is True


def test_try_it_shows_the_local_date_the_move_and_the_text(client, account, world):
    sign_in(client, account())
    rule = world["rule"]
    page = check_page(client.get(f"/rules/{rule}", headers=ENGLISH), language="en")
    sample = json.loads(page.find(".//textarea[@id='sample-event']").text)
    assert sample["type"] == "license.expiring"
    # 15 March 2027 - 30 days = Saturday 13 February: moved to Friday 12.
    event = event_body(source=world["agency"], time="2027-01-04T09:00:00Z", expires_on="2027-03-15")
    answer = post_form(
        client,
        f"/rules/{rule}",
        f"/rules/{rule}/try",
        {"event": json.dumps(event)},
        headers=ENGLISH,
    )
    assert answer.status_code == 200, answer.text
    text = text_of(check_page(answer, language="en"))
    assert "Matches" in text
    assert "Friday 12 February 2027, 09:00" in text, text[text.find("Result") :][:1500]
    assert "moved from Saturday 13 to Friday 12: weekend" in text
    assert "Hola Ana" in text


def test_try_it_with_bad_json_names_the_field(client, account, world):
    sign_in(client, account())
    rule = world["rule"]
    answer = post_form(client, f"/rules/{rule}", f"/rules/{rule}/try", {"event": "{nope"})
    assert answer.status_code == 422 and 'href="#sample-event"' in answer.text
    answer = post_form(
        client,
        f"/rules/{rule}",
        f"/rules/{rule}/try",
        {"event": json.dumps(event_body(citizen={"phone": "612"}))},
    )
    assert answer.status_code == 422 and "data.citizen.phone" in answer.text


def test_an_editor_of_another_agency_gets_404_and_a_viewer_reads_only(client, account, world):
    rule = world["rule"]
    sign_in(client, account(role="editor", agency_id="someone-else"))
    for path in (f"/rules/{rule}", f"/rules/{rule}/edit", f"/rules/{rule}/enabled"):
        assert client.get(path).status_code == 404, path
    token = csrf_of(client.get("/rules").text)
    tried = client.post(f"/rules/{rule}/try", data={"event": "{}", "csrf_token": token})
    assert tried.status_code == 404
    client.cookies.clear()
    sign_in(client, account(role="viewer"))
    page = client.get(f"/rules/{rule}")
    assert page.status_code == 200 and f"/rules/{rule}/edit" not in page.text
    assert client.get(f"/rules/{rule}/edit").status_code == 403
    assert client.get("/rules/new").status_code == 403


def test_an_editor_creates_rules_only_for_their_agency(client, account, world, backends):
    sign_in(client, account(role="editor", agency_id=world["agency"]))
    other = form_of(world, source="another-agency")
    answer = post_form(client, "/rules/new", "/rules/new", other)
    assert answer.status_code == 422 and 'href="#rule-source"' in answer.text
    assert backends.rules.get(f"/v1/rules/{other['id']}", headers=ADMIN).status_code == 404
    mine = form_of(world)
    assert (
        post_form(client, "/rules/new", "/rules/new", mine, follow_redirects=False).status_code
        == 303
    )


def test_saving_without_the_csrf_token_is_refused(client, account, world, backends):
    sign_in(client, account())
    form = form_of(world)
    assert client.post("/rules/new", data=form).status_code == 400
    assert client.post(f"/rules/{world['rule']}/try", data={"event": "{}"}).status_code == 400
    assert backends.rules.get(f"/v1/rules/{form['id']}", headers=ADMIN).status_code == 404


def test_try_it_names_the_holiday_a_reminder_moved_off(client, account, world, backends):
    sign_in(client, account())
    rule = world["rule"]
    # 5 February 2027 - 30 days = Wednesday 6 January, Epiphany in Spain: moved to Tuesday 5.
    event = event_body(source=world["agency"], time="2027-01-01T09:00:00Z", expires_on="2027-02-05")
    answer = post_form(client, f"/rules/{rule}", f"/rules/{rule}/try", {"event": json.dumps(event)})
    text = text_of(check_page(answer, language="es"))
    assert "martes 5 de enero de 2027" in text.lower()
    assert "movido del miércoles 6 al martes 5: Epifanía del Señor" in text


def test_a_condition_typed_in_a_browser_keeps_plain_newlines(client, account, world, backends):
    sign_in(client, account())
    form = form_of(world, when='data.category == "B" ||\r\n  data.category == "C"')
    answer = post_form(client, "/rules/new", "/rules/new", form, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert "\r" not in stored(backends, form["id"])["document"]["when"]
