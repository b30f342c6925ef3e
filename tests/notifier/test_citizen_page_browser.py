"""The citizen preference page in Chromium at 360 px: opened from the link of an email the
fake SendGrid received, a topic turned off by keyboard and mouse, saved, then the next
notification of that topic suppressed and one of another topic sent; zero axe violations in
both languages; a tampered link gets the "new link" page."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright

from schemas.notifications import Channel, Status
from tests.console.browser import CHROMIUM, CHROMIUM_ARGS, ConsoleWatch, assert_accessible
from tests.notifier.test_citizen_page import LINK, delivered, topical
from tests.notifier.test_citizens import PUBLIC_KEY, preferences
from tests.notifier.test_delivery import TWILIO, make_settings, running

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium package"),
]
SHOTS = Path("/tmp/avisa-citizen-page-screenshots")
PHONE = {"width": 360, "height": 740}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(broker, topic_prefix, database_url, providers, tmp_path) -> Iterator[tuple]:
    """The notifier as an HTTP server on a free port (its public URL), and a TestClient of
    the same app for the admin API."""
    port = free_port()
    settings = make_settings(
        broker,
        topic_prefix,
        database_url,
        tmp_path,
        public_url=f"http://127.0.0.1:{port}",
        twilio_base_url=providers.url,
        sendgrid_base_url=providers.url,
        sendgrid_webhook_public_key=PUBLIC_KEY,
        **TWILIO,
    )
    with running(settings) as client:
        server = uvicorn.Server(
            uvicorn.Config(client.app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        yield client, settings
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def phone_page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # JavaScript stays on for axe only: the pages have no script (asserted below).
        context = browser.new_context(viewport=PHONE, locale="es-ES")
        context.set_default_timeout(10_000)
        page = context.new_page()
        watch = ConsoleWatch()
        watch.attach(page)
        yield page
        context.close()
        browser.close()
        assert watch.errors == []


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_a_citizen_turns_a_topic_off_from_the_email_link_on_a_phone(
    served, providers, phone_page: Page
):
    client, settings = served
    first = delivered(settings, topical("citas", channels=("email",)))
    assert first.status is Status.SENT
    delivered(settings, topical("renovaciones", channels=("email",)))
    text = providers.sendgrid_requests()[-1]["body"]["content"][0]["value"]
    url = re.search(LINK.pattern.replace("127\\.0\\.0\\.1:8003", r"127\.0\.0\.1:\d+"), text)
    assert url is not None
    page = phone_page

    page.goto(url.group(1))
    expect(page.get_by_role("heading", name="Gestionar mis avisos")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.locator("script").count() == 0  # works without JavaScript: there is none
    assert_accessible(page)
    shot(page, "preferences-es")
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("button", name="Save preferences")).to_be_visible()
    assert_accessible(page)
    shot(page, "preferences-en")

    page.get_by_label("Appointments").uncheck()
    page.get_by_label("SMS", exact=True).uncheck()
    page.get_by_label("Email first, then SMS").check()
    page.get_by_label("English").check()
    page.get_by_label("Email", exact=True).focus()  # keyboard: Space toggles, Enter submits
    page.keyboard.press("Space")
    page.keyboard.press("Space")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Preferences saved")).to_be_visible()
    assert_accessible(page)
    shot(page, "saved-en")

    stored = preferences(client)
    assert stored["changed_by"] == "citizen" and stored["opt_out_topics"] == ["citas"]
    assert stored["opt_out"] == ["sms"] and stored["channels"] == ["email", "sms"]
    suppressed = delivered(settings, topical("citas"))
    assert (suppressed.status, suppressed.detail) == (Status.SUPPRESSED, "topic opted out")
    sent = delivered(settings, topical("renovaciones"))
    assert (sent.status, sent.channel) == (Status.SENT, Channel.EMAIL)

    token = url.group(1).rsplit("/", 1)[1]
    page.goto(f"{settings.public_url}/preferences/{token[:-3]}xyz")
    expect(page.get_by_role("heading", name="Este enlace no funciona")).to_be_visible()
    assert_accessible(page)
    shot(page, "new-link-es")
