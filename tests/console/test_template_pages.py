"""The template screens: list, page with a field per locale and text, the preview (live
fragment and "Preview" button) with segments, encoding and UCS-2 characters marked, the email
in a sandboxed iframe, undefined variables named; saving makes a version."""

from __future__ import annotations

import uuid

import pytest

from tests.console.conftest import csrf_of, post_form, sign_in
from tests.console.pages import check_page, text_of
from tests.events.conftest import ADMIN
from tests.rules.factories import template_body

ENGLISH = {"Accept-Language": "en-GB,en;q=0.9"}


@pytest.fixture
def template_id(backends):
    template = template_body(id=f"tpl-{uuid.uuid4().hex[:6]}")
    template["locales"]["es"]["email_text"] = "<script>alert(1)</script> Hola {{ citizen.name }}"
    assert backends.rules.put(
        f"/v1/templates/{template['id']}", json=template, headers=ADMIN
    ).is_success
    return template["id"]


def fields_of(page) -> dict[str, str]:
    found = {}
    for field in [*page.iter("input"), *page.iter("textarea")]:
        if field.get("name"):
            found[field.get("name")] = field.get("value") or field.text or ""
    return found


@pytest.mark.parametrize(("headers", "language"), [({}, "es"), (ENGLISH, "en")])
def test_template_pages_are_well_formed(client, account, template_id, headers, language):
    sign_in(client, account())
    for path in ("/templates", "/templates/new", f"/templates/{template_id}"):
        response = client.get(path, headers=headers)
        assert response.status_code == 200, path
        check_page(response, language=language)
        assert "<script>alert(1)</script>" not in response.text, path


def test_each_locale_has_its_labelled_sms_field_and_the_preview(client, account, template_id):
    sign_in(client, account())
    page = check_page(client.get(f"/templates/{template_id}", headers=ENGLISH), language="en")
    labels = {" ".join(label.itertext()).strip() for label in page.iter("label")}
    assert {"SMS (es)", "SMS (en)"} <= labels
    text = text_of(page)
    assert "1 segment" in text or "2 segments" in text
    assert "GSM-7" in text or "UCS-2" in text
    frame = page.find(".//iframe")
    assert frame is not None and frame.get("sandbox") == "" and frame.get("srcdoc")
    assert "<script>" not in frame.get("srcdoc")  # escaped by the renderer, shown as text


def test_the_live_preview_counts_segments_and_marks_ucs2(client, account, template_id):
    sign_in(client, account())
    page = client.get(f"/templates/{template_id}")
    data = {**fields_of(check_page(page, language="es")), "csrf_token": csrf_of(page.text)}
    data["es.sms"] = "Hola " + "a" * 200
    answer = client.post("/templates/preview", data=data, headers=ENGLISH)
    assert answer.status_code == 200
    assert "2 segments" in answer.text and "GSM-7" in answer.text
    assert "<html" not in answer.text  # a fragment for htmx, not a page
    data["es.sms"] = "Hola 😀 Ana"
    answer = client.post("/templates/preview", data=data, headers=ENGLISH)
    assert "UCS-2" in answer.text and '<mark class="console-ucs2"' in answer.text
    assert "1 segment" in answer.text
    data["es.sms"] = "Hola {{ nadie.sabe }}"
    answer = client.post("/templates/preview", data=data, headers=ENGLISH)
    assert "nadie" in answer.text


def test_the_preview_button_works_without_javascript(client, account, template_id, backends):
    sign_in(client, account())
    page = client.get(f"/templates/{template_id}")
    data = {**fields_of(check_page(page, language="es")), "action": "preview"}
    data["en.sms"] = "Ünïcödé ✓"
    answer = post_form(client, f"/templates/{template_id}", f"/templates/{template_id}", data)
    assert answer.status_code == 200 and "UCS-2" in answer.text
    check_page(answer, language="es")
    stored = backends.rules.get(f"/v1/templates/{template_id}", headers=ADMIN).json()
    assert stored["version"] == 1  # a preview saves nothing


def test_saving_makes_a_version_and_a_bad_text_is_named_beside_its_field(
    client, account, template_id, backends
):
    sign_in(client, account())
    page = client.get(f"/templates/{template_id}")
    data = {**fields_of(check_page(page, language="es")), "action": "save"}
    data["en.sms"] = "Hi {{ citizen.name }}, renew now"
    answer = post_form(
        client,
        f"/templates/{template_id}",
        f"/templates/{template_id}",
        data,
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    stored = backends.rules.get(f"/v1/templates/{template_id}", headers=ADMIN).json()
    assert stored["version"] == 2 and stored["document"]["locales"]["en"]["sms"].startswith("Hi")
    data["en.sms"] = "Hi {{ citizen.name "
    answer = post_form(client, f"/templates/{template_id}", f"/templates/{template_id}", data)
    assert answer.status_code == 422 and 'href="#template-en-sms"' in answer.text
    assert check_page(answer, language="es").find(".//*[@id='template-en-sms-error']") is not None


def test_a_new_template_is_created(client, account, backends):
    sign_in(client, account(role="editor", agency_id="any"))
    new_id = f"new-{uuid.uuid4().hex[:6]}"
    data = {"id": new_id, "es.sms": "Hola {{ citizen.name }}", "en.sms": "Hi", "action": "save"}
    answer = post_form(client, "/templates/new", "/templates/new", data, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert backends.rules.get(f"/v1/templates/{new_id}", headers=ADMIN).status_code == 200
    again = post_form(client, "/templates/new", "/templates/new", data)
    assert again.status_code == 422 and 'href="#template-id"' in again.text


def test_a_viewer_reads_but_cannot_save_and_csrf_is_enforced(client, account, template_id):
    sign_in(client, account(role="viewer"))
    page = client.get(f"/templates/{template_id}")
    assert page.status_code == 200
    token = csrf_of(page.text)
    assert client.post(f"/templates/{template_id}", data={"csrf_token": token}).status_code == 403
    assert client.get("/templates/new").status_code == 403
    assert client.post("/templates/preview", data={"es.sms": "x"}).status_code == 400


def test_line_ends_typed_in_a_browser_count_as_one_character(client, account, template_id):
    sign_in(client, account())
    page = client.get(f"/templates/{template_id}")
    data = {**fields_of(check_page(page, language="es")), "csrf_token": csrf_of(page.text)}
    data["es.sms"] = "a\r\nb"
    answer = client.post("/templates/preview", data=data, headers=ENGLISH)
    assert "3 characters" in answer.text


def test_a_language_is_added_with_preview_and_saved_once_written(
    client, account, template_id, backends
):
    sign_in(client, account())
    page = client.get(f"/templates/{template_id}")
    data = {**fields_of(check_page(page, language="es")), "action": "preview", "new_locale": "ca"}
    answer = post_form(client, f"/templates/{template_id}", f"/templates/{template_id}", data)
    labels = {
        " ".join(x.itertext()).strip() for x in check_page(answer, language="es").iter("label")
    }
    assert "SMS (ca)" in labels
    data = {**fields_of(check_page(answer, language="es")), "action": "save", "ca.sms": "Hola!"}
    data["ca.email_subject"], data["ca.email_text"] = "Avís", "Hola"
    answer = post_form(
        client,
        f"/templates/{template_id}",
        f"/templates/{template_id}",
        data,
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    stored = backends.rules.get(f"/v1/templates/{template_id}", headers=ADMIN).json()
    assert stored["document"]["locales"]["ca"]["sms"] == "Hola!"
    bad = {**data, "action": "preview", "new_locale": "<b>"}
    answer = post_form(client, f"/templates/{template_id}", f"/templates/{template_id}", bad)
    assert answer.status_code == 422 and 'href="#template-new-locale"' in answer.text
