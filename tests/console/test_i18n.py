"""The catalogues and the choice of language."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from babel.messages.pofile import read_po

from services.console import i18n


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        (None, None, "es"),
        (None, "en-GB,en;q=0.9", "en"),
        (None, "fr-FR, en;q=0.5, es;q=0.9", "es"),
        (None, "de, en;q=0.1", "en"),
        (None, "en;q=0, es;q=0.1", "es"),
        (None, "zh", "es"),
        ("en", "es", "en"),
        ("fr", "en", "en"),
    ],
)
def test_the_language_is_the_choice_then_the_browser_then_spanish(cookie, header, expected):
    assert i18n.negotiate(cookie, header) == expected


def test_every_message_has_a_spanish_translation():
    with (i18n.TRANSLATIONS / "es/LC_MESSAGES/messages.po").open("rb") as po:
        catalog = read_po(po, locale="es")
    untranslated = [m.id for m in catalog if m.id and not m.string]
    assert untranslated == []


def test_both_catalogues_hold_the_same_messages():
    ids = {}
    for locale in i18n.LOCALES:
        with (i18n.TRANSLATIONS / f"{locale}/LC_MESSAGES/messages.po").open("rb") as po:
            ids[locale] = {m.id for m in read_po(po, locale=locale) if m.id}
    assert ids["es"] == ids["en"]


def test_dates_follow_the_language_and_the_zone():
    moment = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)
    assert i18n.format_moment(moment, "es", "Europe/Madrid") == "15 ene 2027, 9:00:00"
    assert i18n.format_moment("2027-01-15T08:00:00Z", "en", "Europe/Madrid").startswith(
        "Jan 15, 2027"
    )
    assert i18n.format_count(12345, "es") == "12.345"
