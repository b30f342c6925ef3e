"""Languages: Spanish by default, English on request; catalogues compiled from .po at start."""

from __future__ import annotations

import io
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime as babel_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

LOCALES = ("es", "en")
DEFAULT_LOCALE = "es"
LANGUAGE_NAMES = {"es": "Español", "en": "English"}
COOKIE = "avisa_console_lang"
TRANSLATIONS = Path(__file__).parent / "translations"


def load_translations(folder: Path = TRANSLATIONS) -> dict[str, Translations]:
    """Each locale's catalogue, compiled in memory from its messages.po (no build step)."""
    catalogues: dict[str, Translations] = {}
    for locale in LOCALES:
        with (folder / locale / "LC_MESSAGES" / "messages.po").open("rb") as po:
            catalog = read_po(po, locale=locale)
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        catalogues[locale] = Translations(fp=compiled, domain="messages")
    return catalogues


def _preferences(header: str) -> list[tuple[float, str]]:
    ranked: list[tuple[float, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        # Equal qualities keep the header's order: sort by (-q, position).
        ranked.append((-quality + position * 1e-6, tag.strip().lower()))
    return sorted(ranked)


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The person's choice (cookie), else the browser's first supported language, else es."""
    if cookie in LOCALES:
        return cookie
    for score, tag in _preferences(accept_language or ""):
        if score >= 0:  # q=0 means "not this one"
            continue
        language = tag.split("-")[0]
        if language in LOCALES:
            return language
    return DEFAULT_LOCALE


@lru_cache(maxsize=8)
def babel_locale(tag: str) -> Locale:
    """Parsed once: parsing is most of the cost of formatting one number (a 500-row table)."""
    return Locale.parse(tag)


def format_moment(moment: datetime | str | None, locale: str, zone: str) -> str:
    """A date and time (or the ISO text of one, as the APIs send it) in the console's zone,
    in the reader's language (medium format)."""
    if moment is None or moment == "":
        return "—"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return babel_datetime(moment.astimezone(ZoneInfo(zone)), "medium", locale=babel_locale(locale))


def format_count(number: int | float, locale: str) -> str:
    if isinstance(number, int) and -1000 < number < 1000:
        return str(number)  # no grouping to do in either language; a 500-row table saves ~10 ms
    return format_decimal(number, locale=babel_locale(locale))
