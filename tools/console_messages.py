"""Refresh the console's catalogues from its code and templates (run after adding a string).

    .venv/bin/python tools/console_messages.py

Python code marks strings as `pages.gettext(request, "…")` or `_(request, "…")`; templates as
`_("…")`. New messages are added to both catalogues (English ones get msgstr = msgid, Spanish
ones stay empty until translated: tests/console/test_i18n.py fails on an empty one); messages
no longer used are dropped. Word labels the code builds at run time (roles, audit actions) are
listed in EXTRA.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent / "services" / "console"
EXTRA = ["admin", "editor", "viewer", "create", "update", "delete", "rule", "template"]


def extracted() -> list[str]:
    found: list[str] = []
    python = extract_from_dir(
        ROOT, method_map=[("**.py", "python")], keywords={"_": (2,), "gettext": (2,)}
    )
    templates = extract_from_dir(
        ROOT / "templates",
        method_map=[("**.html", "jinja2.ext:babel_extract")],
        options_map={"**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "false"}},
        keywords={"_": None, "gettext": None},
    )
    for _file, _line, message, _comments, _context in [*python, *templates]:
        if isinstance(message, str) and message not in found:
            found.append(message)
    return found + [m for m in EXTRA if m not in found]


def refresh(locale: str, messages: list[str]) -> None:
    path = ROOT / "translations" / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        old = read_po(handle, locale=locale)
    catalog = Catalog(locale=locale, project="avisa-console", charset="utf-8")
    for message in messages:
        known = old.get(message)
        translation = known.string if known is not None and known.string else ""
        if locale == "en" and not translation:
            translation = message
        catalog.add(message, translation)
    with path.open("wb") as handle:
        write_po(handle, catalog, width=100, omit_header=False, sort_output=True)


def main() -> None:
    messages = extracted()
    for locale in ("es", "en"):
        refresh(locale, messages)
    print(f"{len(messages)} messages")


if __name__ == "__main__":
    main()
