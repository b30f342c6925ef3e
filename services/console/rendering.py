"""Pages: Jinja2 (autoescaped) with the GOV.UK Frontend macros, one environment per language."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from babel.support import Translations
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, PrefixLoader

from common.logging import mask
from services.console import i18n
from services.console.security import Signer, visitor_binding

TEMPLATES = Path(__file__).parent / "templates"

NAVIGATION = (
    ("Rules", "/rules"),
    ("Templates", "/templates"),
    ("Agencies", "/agencies"),
    ("Audit", "/audit"),
)
"""The service navigation (English msgids; each page module may add its own later)."""


def _environment(translations: Translations, locale: str, zone: str) -> Environment:
    loader = ChoiceLoader(
        [
            FileSystemLoader(TEMPLATES),
            PrefixLoader({"govuk_frontend_jinja": PackageLoader("govuk_frontend_jinja")}),
        ]
    )
    env = Environment(
        loader=loader,
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    env.filters["moment"] = lambda value: i18n.format_moment(value, locale, zone)
    env.filters["count"] = lambda value: i18n.format_count(value, locale)
    env.globals["locale"] = locale
    return env


class Pages:
    """Renders a page with what every layout needs: who is signed in, the CSRF token, the
    language and the navigation."""

    def __init__(
        self, translations: Mapping[str, Translations], *, signer: Signer, zone: str
    ) -> None:
        self._signer = signer
        self._envs = {
            locale: _environment(translations[locale], locale, zone) for locale in i18n.LOCALES
        }
        self._translations = translations

    def locale(self, request: Request) -> str:
        return i18n.negotiate(
            request.cookies.get(i18n.COOKIE), request.headers.get("accept-language")
        )

    def gettext(self, request: Request, message: str) -> str:
        return self._translations[self.locale(request)].gettext(message)

    def csrf_token(self, request: Request) -> str:
        binding = visitor_binding(request, self._signer)
        return self._signer.csrf_token(binding) if binding else ""

    def render(
        self, request: Request, template: str, *, status: int = 200, **context: Any
    ) -> HTMLResponse:
        locale = self.locale(request)
        member = getattr(request.state, "member", None)
        here = request.url.path
        next_target = quote(here + (f"?{request.url.query}" if request.url.query else ""))
        base = {
            "request": request,
            "member": member,
            "csrf_token": self.csrf_token(request),
            "navigation": [
                {"text": text, "href": href, "active": here.startswith(href)}
                for text, href in NAVIGATION
            ],
            "languages": [
                {
                    "code": code,
                    "name": name,
                    "href": f"/language/{code}?next={next_target}",
                    "current": code == locale,
                }
                for code, name in i18n.LANGUAGE_NAMES.items()
            ],
            "mask": (mask if member is not None and member.read_only else (lambda text: text)),
        }
        html = self._envs[locale].get_template(template).render({**base, **context})
        return HTMLResponse(html, status_code=status)
