"""Driving Debian's Chromium with Playwright, and checking pages with axe-core."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
SHOTS = Path("/tmp/avisa-console-screenshots")

_AXE = Axe()


def assert_accessible(page: Page) -> None:
    """Zero axe-core violations of WCAG 2.1 A and AA on the page as it is now."""
    results = _AXE.run(page, options={"runOnly": {"type": "tag", "values": WCAG_TAGS}})
    assert results.violations_count == 0, f"{page.url}\n{results.generate_report()}"


def screenshot(page: Page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@dataclass
class ConsoleWatch:
    """Every console error and uncaught exception of a page (CSP violations show here)."""

    errors: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))

    def _console(self, page: Page, message: Any) -> None:
        if message.type != "error":
            return
        # Chromium reports a page's own 4xx status (the 404 page, a form shown again with
        # its errors as 422) as a failed load of the document: that is the page, not a fault.
        document = message.location.get("url") == page.url
        if document and message.text.startswith("Failed to load resource"):
            return
        self.errors.append(f"{message.type}: {message.text} ({message.location.get('url')})")
