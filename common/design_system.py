"""The vendored design system (GOV.UK Frontend, unbranded) that every web page uses.

It lives in the console's static folder (`make vendor` writes it there, pinned); the
notifier's citizen page serves the same files rather than a copy."""

from __future__ import annotations

from pathlib import Path

VENDOR_DIR = Path(__file__).resolve().parents[1] / "services" / "console" / "static" / "vendor"
