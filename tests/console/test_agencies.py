"""Agencies and keys through the console, against the real events service."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from services.events.models import Callback
from tests.console.conftest import post_form, sign_in
from tests.console.pages import check_page, text_of
from tests.events.conftest import ADMIN

ENGLISH = {"Accept-Language": "en"}


def new_agency(client) -> str:
    agency = f"ag-{uuid.uuid4().hex[:6]}"
    answer = post_form(
        client, "/agencies", "/agencies", {"id": agency, "name": "Dirección General de Tráfico"}
    )
    assert answer.status_code == 200 and "Organismo creado" in answer.text
    return agency


def test_an_admin_creates_an_agency(client, account, backends):
    sign_in(client, account())
    agency = new_agency(client)
    listed = backends.events.get("/v1/agencies", headers=ADMIN).json()["agencies"]
    assert {"id": agency, "name": "Dirección General de Tráfico"}.items() <= next(
        a for a in listed if a["id"] == agency
    ).items()
    assert f'href="/agencies/{agency}"' in client.get("/agencies").text


def test_an_agency_id_taken_is_named_beside_the_field(client, account):
    sign_in(client, account())
    agency = new_agency(client)
    again = post_form(client, "/agencies", "/agencies", {"id": agency, "name": "Otra"})
    assert again.status_code == 422
    assert "Ya existe un organismo con este id" in again.text and 'href="#agency-id"' in again.text


def test_an_invalid_agency_id_shows_the_services_reason_beside_the_field(client, account):
    sign_in(client, account())
    answer = post_form(client, "/agencies", "/agencies", {"id": "Not A Slug", "name": "X"})
    assert answer.status_code == 422
    page = check_page(answer, language="es")
    assert page.find(".//p[@id='agency-id-error']") is not None


def test_a_new_key_is_shown_once_then_listed_by_its_prefix(client, account, backends):
    sign_in(client, account())
    agency = new_agency(client)
    answer = post_form(client, f"/agencies/{agency}", f"/agencies/{agency}/keys", {})
    assert answer.status_code == 201
    key = re.search(r'id="new-key">([^<]+)<', answer.text).group(1)
    assert key.startswith("avk_")
    assert 'data-copy-target="new-key"' in answer.text  # the copy button, for browsers with JS
    # the key works at the events service, and the console never shows it again
    assert (
        backends.events.get(
            "/v1/events/none", headers={"Authorization": f"Bearer {key}"}
        ).status_code
        == 404
    )
    again = client.get(f"/agencies/{agency}")
    assert key not in again.text and key[4:12] in again.text


def test_revoking_a_key_asks_first_then_revokes_it(client, account, backends):
    sign_in(client, account())
    agency = new_agency(client)
    created = post_form(client, f"/agencies/{agency}", f"/agencies/{agency}/keys", {})
    key = re.search(r'id="new-key">([^<]+)<', created.text).group(1)
    prefix = backends.events.get(f"/v1/agencies/{agency}/keys", headers=ADMIN).json()["keys"][0][
        "prefix"
    ]
    confirm = client.get(f"/agencies/{agency}/keys/{prefix}/revoke", headers=ENGLISH)
    assert "Revoke key" in confirm.text and prefix in confirm.text
    keys = backends.events.get(f"/v1/agencies/{agency}/keys", headers=ADMIN).json()["keys"]
    assert keys[0]["revoked_at"] is None  # asking is not doing
    done = post_form(
        client,
        f"/agencies/{agency}/keys/{prefix}/revoke",
        f"/agencies/{agency}/keys/{prefix}/revoke",
        {},
    )
    assert done.status_code == 200 and f"Clave {prefix} revocada" in done.text
    refused = backends.events.get("/v1/events/x", headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 401
    # a revoked key has no confirmation page any more
    assert client.get(f"/agencies/{agency}/keys/{prefix}/revoke").status_code == 404


def test_the_callback_endpoint_is_saved_and_its_state_shown(client, account, backends):
    sign_in(client, account())
    agency = new_agency(client)
    saved = post_form(
        client,
        f"/agencies/{agency}",
        f"/agencies/{agency}/callback",
        {"url": "http://127.0.0.1:9/avisa", "secret": "s" * 20},
    )
    assert saved.status_code == 200
    page = text_of(check_page(saved, language="es"))
    assert "Punto de retorno guardado" in page and "http://127.0.0.1:9/avisa" in page
    assert "Activo" in page
    assert "s" * 20 not in saved.text  # the secret is never shown


def test_a_bad_callback_is_shown_again_with_errors_beside_the_fields(client, account):
    sign_in(client, account())
    agency = new_agency(client)
    answer = post_form(
        client,
        f"/agencies/{agency}",
        f"/agencies/{agency}/callback",
        {"url": "", "secret": "short"},
    )
    assert answer.status_code == 422
    assert 'href="#callback-url"' in answer.text and 'href="#callback-secret"' in answer.text
    answer = post_form(
        client,
        f"/agencies/{agency}",
        f"/agencies/{agency}/callback",
        {"url": "ftp://nowhere", "secret": "s" * 20},
    )
    assert answer.status_code == 422
    assert "ftp://nowhere" in answer.text and 'id="callback-url-error"' in answer.text


def test_a_suspended_callback_says_so_and_why(client, account, backends):
    sign_in(client, account())
    agency = new_agency(client)
    post_form(
        client,
        f"/agencies/{agency}",
        f"/agencies/{agency}/callback",
        {"url": "http://127.0.0.1:9/avisa", "secret": "s" * 20},
    )
    # Arrange what the events service's sender does after failing for long enough.
    with backends.events.app.state.services.sessions.begin() as db:
        callback = db.get(Callback, agency)
        callback.state, callback.failures = "suspended", 12
        callback.failing_since = callback.suspended_at = datetime.now(UTC)
        callback.last_error = "connection refused"
    page = text_of(check_page(client.get(f"/agencies/{agency}", headers=ENGLISH), language="en"))
    assert "Suspended" in page and "after 12 failed attempts" in page
    assert "connection refused" in page and "Saving the endpoint again resumes it." in page
