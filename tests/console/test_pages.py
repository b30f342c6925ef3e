"""Every page, signed in and out, in both languages: valid HTML, a title, labelled inputs,
the security headers; and the error pages never show a stack trace."""

from __future__ import annotations

import uuid

import pytest

from tests.console.conftest import post_form, sign_in
from tests.console.pages import check_page, text_of
from tests.events.conftest import ADMIN
from tests.rules.factories import rule_body, template_body

ENGLISH = {"Accept-Language": "en-GB,en;q=0.9"}
SPANISH = {"Accept-Language": "es-ES,es;q=0.9"}


@pytest.fixture(scope="module")
def world(backends):
    """An agency with a key, a template and a rule whose text holds markup."""
    agency = f"ag-{uuid.uuid4().hex[:6]}"
    backends.events.post("/v1/agencies", json={"id": agency, "name": "Tráfico"}, headers=ADMIN)
    key = backends.events.post(f"/v1/agencies/{agency}/keys", headers=ADMIN).json()
    template = template_body(id=f"tpl-{uuid.uuid4().hex[:6]}")
    assert backends.rules.put(
        f"/v1/templates/{template['id']}", json=template, headers=ADMIN
    ).is_success
    rule = rule_body(
        id=f"rule-{uuid.uuid4().hex[:6]}",
        template=template["id"],
        description="<script>alert(1)</script> aviso",
        source=agency,
    )
    assert backends.rules.put(f"/v1/rules/{rule['id']}", json=rule, headers=ADMIN).is_success
    return {"agency": agency, "prefix": key["prefix"], "rule": rule["id"]}


def signed_in_pages(world) -> list[str]:
    agency = world["agency"]
    return [
        "/",
        "/rules",
        "/templates",
        "/agencies",
        f"/agencies/{agency}",
        f"/agencies/{agency}/keys/{world['prefix']}/revoke",
        "/audit",
        "/audit?object=rule/x&person=a",
        "/accessibility",
    ]


@pytest.mark.parametrize(("headers", "language"), [(SPANISH, "es"), (ENGLISH, "en")])
def test_every_page_signed_in_is_well_formed(client, account, world, headers, language):
    sign_in(client, account(role="admin"))
    for path in signed_in_pages(world):
        response = client.get(path, headers=headers)
        assert response.status_code == 200, path
        page = check_page(response, language=language)
        assert ("Cerrar sesión" if language == "es" else "Sign out") in text_of(page), path


@pytest.mark.parametrize(("headers", "language"), [(SPANISH, "es"), (ENGLISH, "en")])
def test_pages_signed_out_are_well_formed(client, headers, language):
    for path in ("/sign-in", "/accessibility", "/no-such-page"):
        response = client.get(path, headers=headers)
        check_page(response, language=language)
        assert "Sign out" not in response.text and "Cerrar sesión" not in response.text


def test_spanish_is_the_default_and_english_follows_the_browser(client):
    assert "Iniciar sesión" in client.get("/sign-in").text
    assert (
        '<h1 class="govuk-heading-l">Sign in</h1>' in client.get("/sign-in", headers=ENGLISH).text
    )
    # Spanish preferred over English: Spanish.
    prefers = {"Accept-Language": "fr, es;q=0.8, en;q=0.5"}
    assert "Iniciar sesión" in client.get("/sign-in", headers=prefers).text


def test_the_language_link_is_remembered_over_the_browser(client):
    answer = client.get("/language/en?next=/sign-in", follow_redirects=False)
    assert answer.headers["location"] == "/sign-in"
    assert "Email address" in client.get("/sign-in", headers=SPANISH).text
    client.get("/language/es?next=/sign-in")
    assert "Correo electrónico" in client.get("/sign-in", headers=ENGLISH).text


def test_navigation_names_rules_templates_agencies_audit(client, account):
    sign_in(client, account())
    page = check_page(client.get("/", headers=ENGLISH), language="en")
    links = [" ".join(a.itertext()).strip() for a in page.iter("a")]
    for name in ("Rules", "Templates", "Agencies", "Audit"):
        assert name in links


def test_markup_in_a_rule_shows_as_text(client, account, world):
    sign_in(client, account())
    listing = client.get("/rules")
    assert "<script>alert(1)</script>" not in listing.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; aviso" in listing.text


def test_the_rules_placeholder_lists_id_description_event_type_enabled_channels(
    client, account, world
):
    sign_in(client, account())
    page = check_page(client.get("/rules", headers=ENGLISH), language="en")
    headers = [" ".join(th.itertext()).strip() for th in page.iter("th")]
    assert headers[:5] == ["Id", "Description", "Event type", "Enabled", "Channels"]
    assert world["rule"] in text_of(page)


def test_an_unknown_page_is_a_404_page_of_the_console(client, account):
    sign_in(client, account())
    response = client.get("/nowhere", headers=ENGLISH)
    assert response.status_code == 404
    assert "Page not found" in check_page(response, language="en").findtext(".//h1")


def test_a_crash_is_a_500_page_without_a_stack_trace(client, account, app_client):
    sign_in(client, account())
    console = app_client.app.state.console
    original = console.services.rules.rules

    def broken(**_kwargs):
        raise RuntimeError("secret internals")

    console.services.rules.rules = broken
    try:
        response = client.get("/rules", headers=ENGLISH)
    finally:
        console.services.rules.rules = original
    assert response.status_code == 500
    assert "Traceback" not in response.text and "secret internals" not in response.text
    assert "Sorry, there is a problem with the service" in response.text
    check_page(response, language="en")


def test_a_service_that_does_not_answer_is_named_on_a_503_page(client, account, app_client):
    import httpx

    from services.console.clients.base import ServiceClient

    sign_in(client, account())
    console = app_client.app.state.console
    original = console.services.rules._client
    dead = httpx.Client(base_url="http://127.0.0.1:1", timeout=1)
    console.services.rules._client = ServiceClient("rules", dead, "k")
    try:
        response = client.get("/rules", headers=ENGLISH)
    finally:
        console.services.rules._client = original
        dead.close()
    assert response.status_code == 503
    assert "could not reach the rules service" in response.text


def test_a_form_posted_by_another_site_is_refused(client, account):
    sign_in(client, account())
    forged = client.post("/agencies", data={"id": "forged", "name": "x"})
    assert forged.status_code == 400
    assert "Este formulario ha caducado" in forged.text
    assert "forged" not in client.get("/agencies").text


def test_bad_input_shows_the_form_again_with_the_error_beside_the_field(client, account):
    sign_in(client, account())
    answer = post_form(client, "/agencies", "/agencies", {"id": "Not A Slug!", "name": ""})
    assert answer.status_code == 422
    page = check_page(answer, language="es")
    assert page.find(".//*[@class='govuk-error-summary']") is not None
    assert 'href="#agency-name"' in answer.text
    assert "Escriba el nombre del organismo" in text_of(page)


def test_very_long_values_are_named_beside_their_field_not_refused_as_a_page(client, account):
    answer = post_form(
        client, "/sign-in", "/sign-in", {"email": "a" * 600 + "@x.es", "password": "p"}
    )
    assert answer.status_code == 422 and 'href="#email"' in answer.text
    sign_in(client, account())
    answer = post_form(client, "/agencies", "/agencies", {"id": "ok-id", "name": "n" * 300})
    assert answer.status_code == 422 and 'href="#agency-name"' in answer.text
    assert client.get("/audit?object=" + "x" * 500).status_code == 200
