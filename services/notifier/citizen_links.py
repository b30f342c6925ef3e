"""The citizen's preference page link in what we send (pure; no I/O).

Every email ends with a link to `{public_url}/preferences/{token}` ("Gestionar mis avisos" /
"Manage my notifications"), in its text and HTML parts. A template may also place the link
itself with `{{ preferences_url }}`: the rules service renders that as
`PREFERENCES_URL_PLACEHOLDER` (a string as long as a real link, so previews count the SMS
segments it costs) and the notifier replaces it here, at send time, with a fresh signed link:
the token is the notifier's, and each message brings a newer one."""

from __future__ import annotations

from html import escape

from schemas.notifications import PREFERENCES_URL_PLACEHOLDER

LINK_TEXT = {"es": "Gestionar mis avisos", "en": "Manage my notifications"}


def preferences_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/preferences/{token}"


def link_text(locale: str) -> str:
    """The link's words in the message's language (Spanish unless it is English)."""
    return LINK_TEXT.get(locale.split("-", maxsplit=1)[0].lower(), LINK_TEXT["es"])


def fill(text: str, url: str) -> str:
    """`text` with every `{{ preferences_url }}` placeholder replaced by the link."""
    return text.replace(PREFERENCES_URL_PLACEHOLDER, url)


def email_text(text: str, url: str, locale: str) -> str:
    """The text part, its placeholders filled, ending with the labelled link."""
    return f"{fill(text, url).rstrip()}\n\n{link_text(locale)}: {url}\n"


def email_html(html: str, url: str, locale: str) -> str:
    """The HTML part, its placeholders filled, with the link before `</body>` (or at the
    end when there is no body element)."""
    link = f'<p><a href="{escape(url)}">{escape(link_text(locale))}</a></p>'
    filled = fill(html, url)
    index = filled.lower().rfind("</body>")
    if index < 0:
        return f"{filled}{link}"
    return f"{filled[:index]}{link}{filled[index:]}"
