"""The console in Chromium, against the three services and the console as real processes:
sign-in by keyboard alone with a TOTP code, every page with zero axe-core violations in both
languages, signed in and out, a key created and revoked, and no browser console errors."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.console.browser import CHROMIUM, assert_accessible, screenshot
from tests.console.conftest import Account, add_account

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium package"),
]


def sign_in_by_keyboard(page: Page, person: Account) -> None:
    """Tab to each field, type, and press Enter: no mouse anywhere."""
    page.goto("/sign-in")
    for field_id, text in (("email", person.email), ("password", person.password)):
        for _ in range(15):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == field_id:
                break
        else:
            raise AssertionError(f"Tab never reached #{field_id}")
        page.keyboard.type(text)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "code"
    page.keyboard.type(person.code())
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/$"))


def test_sign_in_by_keyboard_alone_with_a_security_code(page: Page, console_url):
    person = add_account(console_url[1], role="admin")
    page.goto("/sign-in")
    assert_accessible(page)
    screenshot(page, "sign-in-es")
    sign_in_by_keyboard(page, person)
    expect(page.get_by_role("button", name="Cerrar sesión")).to_be_visible()
    assert_accessible(page)
    screenshot(page, "home-es")


def test_a_wrong_code_shows_an_accessible_error_beside_the_field(page: Page, console_url):
    person = add_account(console_url[1], role="admin")
    page.goto("/sign-in")
    page.get_by_label("Correo electrónico").fill(person.email)
    page.get_by_label("Contraseña").fill(person.password)
    page.get_by_label("Código de seguridad").fill("000000" if person.code() != "000000" else "1")
    page.get_by_role("button", name="Iniciar sesión").click()
    expect(page.locator("#code-error")).to_contain_text("El código de seguridad no es correcto")
    expect(page.get_by_role("alert")).to_be_visible()
    assert_accessible(page)
    screenshot(page, "sign-in-error-es")


def visit_every_page(page: Page, agency: str, prefix: str, language: str) -> None:
    for path in (
        "/",
        "/rules",
        "/templates",
        "/agencies",
        f"/agencies/{agency}",
        f"/agencies/{agency}/keys/{prefix}/revoke",
        "/audit",
        "/accessibility",
        "/no-such-page",
    ):
        page.goto(path)
        assert page.evaluate("document.documentElement.lang") == language
        assert_accessible(page)
        name = path.strip("/").replace("/", "-") or "home"
        screenshot(page, f"{name[:40]}-{language}")


def test_agencies_and_keys_then_every_page_in_both_languages(page: Page, console_url):
    sign_in_by_keyboard(page, add_account(console_url[1], role="admin"))
    agency = f"ag-{uuid.uuid4().hex[:6]}"
    page.goto("/agencies")
    page.get_by_label("Id del organismo").fill(agency)
    page.get_by_label("Nombre").fill("Dirección General de Tráfico")
    page.get_by_role("button", name="Crear organismo").click()
    expect(page.get_by_text("Organismo creado")).to_be_visible()

    page.get_by_role("button", name="Crear una clave").click()
    key = page.locator("#new-key").inner_text()
    assert key.startswith("avk_")
    expect(page.get_by_role("button", name="Copiar clave")).to_be_visible()  # JS shows it
    assert_accessible(page)
    screenshot(page, "new-key-es")
    prefix = key[4:12]

    visit_every_page(page, agency, prefix, "es")
    page.goto("/")
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    visit_every_page(page, agency, prefix, "en")

    page.goto(f"/agencies/{agency}")
    page.get_by_role("link", name=re.compile(f"Revoke {prefix}")).click()
    page.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_text(f"Key {prefix} revoked")).to_be_visible()
    expect(page.get_by_text("Revoked").first).to_be_visible()
    assert_accessible(page)

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile("/sign-in"))
    for path in ("/sign-in", "/accessibility"):
        page.goto(path)
        assert_accessible(page)
    screenshot(page, "signed-out-accessibility-en")
