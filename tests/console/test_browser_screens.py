"""The rule and template screens in Chromium, against the real services as processes: create
a template and a rule from the forms, break the rule's CEL and see the error beside the field,
try it and see the reminder's local date and its move, watch the SMS segment count and the
encoding change while typing, restore an old version; axe on every new page in both
languages; rule edit and template preview by keyboard alone; no browser console errors."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.console.browser import CHROMIUM, SHOTS, assert_accessible, screenshot
from tests.console.conftest import add_account
from tests.console.test_browser import sign_in_by_keyboard

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium package"),
]

DOCS = Path(__file__).resolve().parents[2] / "docs"


def doc_shot(page: Page, name: str) -> None:
    """A README screenshot: into docs/ with AVISA_DOCS_SCREENSHOTS=1, else beside the others.
    The whole page in a viewport that tall (a full-page capture leaves sandboxed iframes blank
    in Chromium), then the viewport as it was."""
    folder = DOCS if os.environ.get("AVISA_DOCS_SCREENSHOTS") == "1" else SHOTS
    folder.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size or {"width": 1280, "height": 720}
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": before["width"], "height": height})
    page.evaluate("() => new Promise(requestAnimationFrame)")
    page.screenshot(path=str(folder / name))
    page.set_viewport_size(before)


def in_english(page: Page) -> None:
    page.goto("/")
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def create_template(page: Page, template_id: str) -> None:
    page.goto("/templates/new")
    page.get_by_label("Id", exact=True).fill(template_id)
    page.get_by_label("SMS (es)").fill(
        "Hola {{ citizen.name }}, renueva antes del {{ data.expires_on | fecha }}."
    )
    page.get_by_label("Email subject (es)").fill("Tu permiso caduca pronto")
    page.get_by_label("Email text (es)").fill("Hola {{ citizen.name }}:\n\nRenuévalo en la sede.")
    page.get_by_label("SMS (en)").fill(
        "Hi {{ citizen.name }}, renew by {{ data.expires_on | fecha }}."
    )
    page.get_by_label("Email subject (en)").fill("Your licence expires soon")
    page.get_by_label("Email text (en)").fill("Hi {{ citizen.name }},\n\nRenew it online.")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved as version 1")).to_be_visible()


def create_rule(page: Page, rule_id: str, template_id: str) -> None:
    page.goto("/rules/new")
    page.get_by_label("Id", exact=True).fill(rule_id)
    page.get_by_label("Description").fill("Recordar la renovación del permiso")
    page.get_by_label("Event type").fill("license.expiring")
    page.get_by_label("Template").fill(template_id)
    page.get_by_label("Relative to").fill("data.expires_on")
    page.get_by_label("Offsets").fill("-P30D")
    page.get_by_label("Local time").fill("09:00")
    page.get_by_label("Holiday calendar").fill("ES")
    page.get_by_label("Cancelled by").fill("license.renewed")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved as version 1")).to_be_visible()


def test_rules_and_templates_from_the_forms_to_try_it_and_restore(page: Page, console_url):
    sign_in_by_keyboard(page, add_account(console_url[1], role="admin"))
    in_english(page)
    suffix = uuid.uuid4().hex[:6]
    template_id, rule_id = f"tpl-{suffix}", f"rule-{suffix}"
    create_template(page, template_id)
    create_rule(page, rule_id, template_id)

    page.get_by_role("button", name="Edit rule").click()
    page.get_by_label("Condition (CEL)").fill('data.category ==\n  ("B"')
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.locator("#rule-when-error")).to_contain_text(re.compile(r"line 2, column \d+"))
    assert_accessible(page)
    screenshot(page, "rule-cel-error-en")

    page.goto(f"/rules/{rule_id}")
    expect(page.get_by_label("Sample event (JSON)")).to_contain_text('"type": "license.expiring"')
    page.get_by_role("button", name="Try it").click()
    result = page.locator("#result")
    expect(result).to_contain_text("Matches")
    expect(result).to_contain_text("Friday 12 February 2027, 09:00")
    expect(result).to_contain_text("moved from Saturday 13 to Friday 12: weekend")
    assert_accessible(page)
    screenshot(page, "rule-try-it-en")
    doc_shot(page, "console-rule.png")

    page.goto(f"/templates/{template_id}")
    sms = page.get_by_label("SMS (en)")
    preview = page.locator("#preview [data-preview='sms-en']")
    expect(preview).to_contain_text("1 segment")
    expect(preview).to_contain_text("GSM-7")
    sms.fill("Hi {{ citizen.name }}, " + "renew your licence soon. " * 7)
    expect(preview).to_contain_text("2 segments")
    sms.press("Control+End")
    sms.press_sequentially("✓")
    expect(preview).to_contain_text("UCS-2")
    expect(page.locator("#preview mark.console-ucs2")).to_have_text("✓")
    frames = page.locator("#preview iframe[sandbox='']")
    expect(frames).to_have_count(2)
    expect(frames.nth(0).content_frame.locator("body")).to_contain_text("Renuévalo en la sede")
    expect(frames.nth(1).content_frame.locator("body")).to_contain_text("Renew it online")
    assert_accessible(page)
    screenshot(page, "template-preview-en")
    doc_shot(page, "console-template-preview.png")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved as version 2")).to_be_visible()

    page.goto(f"/templates/{template_id}/versions")
    page.get_by_role("link", name="Restore version 1").click()
    page.get_by_role("button", name="Restore version 1").click()
    expect(page.get_by_text("Restored as version 3")).to_be_visible()
    page.goto(f"/templates/{template_id}")
    expect(page.get_by_label("SMS (en)")).to_have_value(
        re.compile(r"^Hi \{\{ citizen.name \}\}, renew by")
    )


def new_pages(rule_id: str, template_id: str) -> list[str]:
    return [
        "/rules",
        "/rules/new",
        f"/rules/{rule_id}",
        f"/rules/{rule_id}/edit",
        f"/rules/{rule_id}/enabled",
        f"/rules/{rule_id}/versions",
        f"/rules/{rule_id}/diff?from=1&to=2",
        f"/rules/{rule_id}/versions/1/restore",
        "/templates",
        "/templates/new",
        f"/templates/{template_id}",
        f"/templates/{template_id}/versions",
        f"/templates/{template_id}/diff?from=1&to=2",
        f"/templates/{template_id}/versions/1/restore",
    ]


def test_every_new_page_in_both_languages_and_edits_by_keyboard(page: Page, console_url):
    sign_in_by_keyboard(page, add_account(console_url[1], role="admin"))
    in_english(page)
    suffix = uuid.uuid4().hex[:6]
    template_id, rule_id = f"kbd-{suffix}", f"kbd-rule-{suffix}"
    create_template(page, template_id)
    create_rule(page, rule_id, template_id)

    # Rule edit by keyboard alone: Tab to the description, type, Enter submits.
    page.goto(f"/rules/{rule_id}/edit")
    tab_to(page, "rule-description")
    page.keyboard.press("Control+A")
    page.keyboard.type("Changed by keyboard")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Saved as version 2")).to_be_visible()
    expect(page.get_by_text("Changed by keyboard")).to_be_visible()

    # Template preview by keyboard alone: type, the live preview follows; then "Preview".
    page.goto(f"/templates/{template_id}")
    tab_to(page, "template-en-sms")
    page.keyboard.press("Control+End")
    page.keyboard.type(" ✓")
    expect(page.locator("#preview [data-preview='sms-en']")).to_contain_text("UCS-2")
    tab_to(page, "template-es-sms")
    page.keyboard.type(" x")
    tab_to(page, "", name="Save")
    page.keyboard.press("Tab")  # the "Preview" button follows "Save"
    page.keyboard.press("Enter")
    expect(page.locator("#template-en-sms")).to_have_value(re.compile("✓$"))
    expect(page.get_by_text("Saved as version")).to_have_count(0)
    page.goto(f"/templates/{template_id}")
    page.get_by_label("Email subject (es)").fill("Asunto nuevo")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved as version 2")).to_be_visible()

    for language in ("en", "es"):
        if language == "es":
            page.get_by_role("link", name="Español").click()
        for path in new_pages(rule_id, template_id):
            page.goto(path)
            assert page.evaluate("document.documentElement.lang") == language, path
            assert_accessible(page)


def tab_to(page: Page, field_id: str, *, name: str | None = None, limit: int = 80) -> None:
    """Press Tab until the element with this id (or a button with this text) has focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        active = page.evaluate(
            "[document.activeElement.id, (document.activeElement.textContent || '').trim()]"
        )
        if (field_id and active[0] == field_id) or (name and active[1] == name):
            return
    raise AssertionError(f"Tab never reached #{field_id or name}")
