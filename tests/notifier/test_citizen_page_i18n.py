"""The preference page's catalogues: every message its templates and form errors use has a
Spanish translation, and both catalogues hold the same messages."""

from __future__ import annotations

import re

from babel.messages.pofile import read_po
from jinja2.ext import babel_extract

from services.notifier import citizen_choices, citizen_page

FOLDER = citizen_page.HERE


def catalogue(lang: str) -> dict[str, str]:
    with (FOLDER / "translations" / lang / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return {
            m.id: m.string if isinstance(m.string, str) else ""
            for m in read_po(po, locale=lang)
            if isinstance(m.id, str) and m.id
        }


def used_messages() -> set[str]:
    found: set[str] = set()
    for template in (FOLDER / "templates").glob("*.html"):
        with template.open("rb") as source:
            found |= {m[2] for m in babel_extract(source, ["_"], [], {}) if isinstance(m[2], str)}
    code = (FOLDER / "citizen_choices.py").read_text()
    found |= set(re.findall(r'FormInvalid\(\s*"?[a-z_]+"?,\s*"([^"]+)"', code))
    return found


def test_every_message_the_page_uses_has_a_spanish_translation():
    spanish = catalogue("es")
    used = used_messages()
    assert "Save preferences" in used and "Enter a time like 21:00" in used
    assert sorted(m for m in used if not spanish.get(m)) == []


def test_both_catalogues_hold_the_same_messages():
    assert set(catalogue("es")) == set(catalogue("en"))
    assert citizen_choices.LANGUAGES == ("es", "en")
