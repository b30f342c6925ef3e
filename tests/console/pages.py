"""What every console page must be, checked the same way in the page tests."""

from __future__ import annotations

from typing import Any

from tests.console.conftest import parse


def check_page(response: Any, *, language: str) -> Any:
    """The page parses as HTML, has a title, its language, a label for every input, and the
    security headers; returns the parsed tree."""
    assert response.headers["content-type"].startswith("text/html")
    page = parse(response.text)
    assert page.get("lang") == language
    title = page.find("head/title")
    assert title is not None and (title.text or "").strip(), "the page has no title"
    labelled = {label.get("for") for label in page.iter("label")}
    for field in [*page.iter("input"), *page.iter("textarea"), *page.iter("select")]:
        if field.get("type") in ("hidden", "submit", "button"):
            continue
        assert field.get("id") in labelled, f"input {field.get('name')} has no label"
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "'unsafe-inline'" not in policy
    assert "script-src 'self'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    for script in page.iter("script"):
        assert script.get("src"), "inline script"
    return page


def text_of(page: Any) -> str:
    return " ".join(" ".join(page.itertext()).split())
