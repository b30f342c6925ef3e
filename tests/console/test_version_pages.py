"""Versions of rules and templates: every version, a diff between any two, restore (a new
version) after a confirmation; editors of another agency get 404; CSRF enforced."""

from __future__ import annotations

import uuid

import pytest

from tests.console.conftest import csrf_of, post_form, sign_in
from tests.console.pages import check_page, text_of
from tests.events.conftest import ADMIN
from tests.rules.factories import rule_body, template_body

ENGLISH = {"Accept-Language": "en-GB,en;q=0.9"}


@pytest.fixture
def history(backends):
    """A template and a rule of agency `hist`, each with three versions."""
    template = template_body(id=f"tpl-{uuid.uuid4().hex[:6]}")
    backends.rules.put(f"/v1/templates/{template['id']}", json=template, headers=ADMIN)
    rule_id = f"rule-{uuid.uuid4().hex[:6]}"
    for n in (1, 2, 3):
        rule = rule_body(
            id=rule_id, template=template["id"], source="hist", description=f"<b>versión</b> {n}"
        )
        assert backends.rules.put(f"/v1/rules/{rule_id}", json=rule, headers=ADMIN).is_success
        template["locales"]["es"]["email_subject"] = f"Asunto {n}"
        backends.rules.put(f"/v1/templates/{template['id']}", json=template, headers=ADMIN)
    return {"rule": rule_id, "template": template["id"]}


@pytest.mark.parametrize(("headers", "language"), [({}, "es"), (ENGLISH, "en")])
def test_version_pages_are_well_formed(client, account, history, headers, language):
    sign_in(client, account())
    for kind, object_id in (("rules", history["rule"]), ("templates", history["template"])):
        for path in (
            f"/{kind}/{object_id}/versions",
            f"/{kind}/{object_id}/diff?from=1&to=3",
            f"/{kind}/{object_id}/versions/1/restore",
        ):
            response = client.get(path, headers=headers)
            assert response.status_code == 200, path
            check_page(response, language=language)
            assert "<b>versión</b>" not in response.text


def test_the_diff_shows_what_changed_between_any_two(client, account, history):
    sign_in(client, account())
    page = check_page(
        client.get(f"/rules/{history['rule']}/diff?from=1&to=3", headers=ENGLISH), language="en"
    )
    text = text_of(page)
    assert "Changes from version 1 to 3" in text and "description" in text
    assert "versión</b> 1" in text and "versión</b> 3" in text


def test_restore_asks_then_makes_a_new_version(client, account, history, backends):
    sign_in(client, account())
    rule = history["rule"]
    confirm = client.get(f"/rules/{rule}/versions/1/restore", headers=ENGLISH)
    assert "Restore version 1?" in text_of(check_page(confirm, language="en"))
    assert backends.rules.get(f"/v1/rules/{rule}", headers=ADMIN).json()["version"] == 3
    answer = post_form(
        client,
        f"/rules/{rule}/versions/1/restore",
        f"/rules/{rule}/versions/1/restore",
        {},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    live = backends.rules.get(f"/v1/rules/{rule}", headers=ADMIN).json()
    assert live["version"] == 4 and live["document"]["description"] == "<b>versión</b> 1"
    template = history["template"]
    post_form(
        client, f"/templates/{template}/versions", f"/templates/{template}/versions/1/restore", {}
    )
    live = backends.rules.get(f"/v1/templates/{template}", headers=ADMIN).json()
    assert live["version"] == 5
    assert "Asunto" not in live["document"]["locales"]["es"]["email_subject"]


def test_an_editor_of_another_agency_cannot_see_or_restore(client, account, history, backends):
    rule = history["rule"]
    sign_in(client, account(role="editor", agency_id="other"))
    assert client.get(f"/rules/{rule}/versions").status_code == 404
    assert client.get(f"/rules/{rule}/diff?from=1&to=2").status_code == 404
    token = csrf_of(client.get("/rules").text)
    restore = client.post(f"/rules/{rule}/versions/1/restore", data={"csrf_token": token})
    assert restore.status_code == 404
    assert backends.rules.get(f"/v1/rules/{rule}", headers=ADMIN).json()["version"] == 3


def test_a_viewer_cannot_restore_and_csrf_is_enforced(client, account, history, backends):
    rule = history["rule"]
    sign_in(client, account(role="viewer"))
    assert client.get(f"/rules/{rule}/versions").status_code == 200
    assert client.get(f"/rules/{rule}/versions/1/restore").status_code == 403
    client.cookies.clear()
    sign_in(client, account())
    assert client.post(f"/rules/{rule}/versions/1/restore").status_code == 400
    assert backends.rules.get(f"/v1/rules/{rule}", headers=ADMIN).json()["version"] == 3


def test_an_unknown_version_is_not_found(client, account, history):
    sign_in(client, account())
    assert client.get(f"/rules/{history['rule']}/versions/99/restore").status_code == 404
