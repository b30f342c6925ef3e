"""One-click unsubscribe (RFC 8058): a plain page in the citizen's language, and the POST that
mail clients send with `List-Unsubscribe=One-Click`. A tampered token changes nothing and
shows a page saying so (400); an expired one says to use a newer email's link (410). A page
names no citizen and shows no data, only the language on file for a genuine token's citizen."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from schemas.notifications import Channel
from services.notifier import directory, repository, tokens

router = APIRouter(tags=["unsubscribe"], include_in_schema=True)

TEXTS: dict[str, dict[str, str]] = {
    "es": {
        "title": "Darse de baja",
        "ask": "¿Quieres dejar de recibir avisos por correo electrónico?",
        "button": "Darme de baja",
        "done": "Listo: ya no recibirás avisos por correo electrónico.",
        "bad": "Este enlace no es válido. Usa el enlace del último correo recibido.",
        "expired": "Este enlace ha caducado. Usa el enlace del último correo recibido.",
    },
    "en": {
        "title": "Unsubscribe",
        "ask": "Do you want to stop receiving notices by email?",
        "button": "Unsubscribe",
        "done": "Done: you will not receive notices by email any more.",
        "bad": "This link is not valid. Use the link in the latest email you received.",
        "expired": "This link has expired. Use the link in the latest email you received.",
    },
}


@dataclass(frozen=True, slots=True)
class UnsubscribeContext:
    """What the pages need, built in `main`; `legacy_secret` verifies first-scheme links
    until `legacy_until` (None: they are refused)."""

    sessions: repository.SessionFactory
    keys: tokens.TokenKeys
    max_age: timedelta
    default_locale: str
    clock: Callable[[], datetime]
    legacy_secret: bytes | None = None
    legacy_until: datetime | None = None


def language(locale: str | None, default: str) -> str:
    """`es` or `en` from a BCP 47 tag; the default's language when neither."""
    for tag in (locale, default):
        if tag and tag.split("-")[0].lower() in TEXTS:
            return tag.split("-")[0].lower()
    return "es"


def page(lang: str, message: str, *, form_action: str | None = None) -> str:
    """A small self-contained HTML page; with `form_action`, a one-click form."""
    texts = TEXTS[lang]
    form = (
        f'<form method="post" action="{escape(form_action)}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        f'<button type="submit">{escape(texts["button"])}</button></form>'
        if form_action
        else ""
    )
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(texts['title'])}</title></head>"
        f"<body><main><h1>{escape(texts['title'])}</h1><p>{escape(message)}</p>{form}"
        "</main></body></html>"
    )


def verified(context: UnsubscribeContext, token: str) -> str | tokens.Refusal:
    """The citizen an email unsubscribe token names, or why it is refused."""
    now = context.clock()
    try:
        claims = tokens.verify(
            context.keys, token, purpose=tokens.UNSUBSCRIBE, max_age=context.max_age, now=now
        )
    except tokens.TokenRefused as refused:
        return _legacy(context, token, now) or refused.reason
    return claims.subject if claims.detail == Channel.EMAIL.value else tokens.Refusal.INVALID


def _legacy(context: UnsubscribeContext, token: str, now: datetime) -> str | None:
    if context.legacy_secret is None or context.legacy_until is None:
        return None
    until = context.legacy_until
    if now >= (until if until.tzinfo else until.replace(tzinfo=now.tzinfo)):
        return None
    found = tokens.legacy_unsubscribe(context.legacy_secret, token)
    return found[0] if found is not None and found[1] == Channel.EMAIL.value else None


def refused_page(context: UnsubscribeContext, refusal: tokens.Refusal) -> HTMLResponse:
    """The page for a refused token, in the default language (it names no citizen)."""
    lang = language(None, context.default_locale)
    if refusal is tokens.Refusal.EXPIRED:
        return HTMLResponse(page(lang, TEXTS[lang]["expired"]), status_code=410)
    return HTMLResponse(page(lang, TEXTS[lang]["bad"]), status_code=400)


def _citizen_language(context: UnsubscribeContext, citizen_id: str) -> str:
    with context.sessions() as session:
        row = directory.get_preferences(session=session, citizen_id=citizen_id)
        locale = row.locale if row else None
    return language(locale, context.default_locale)


def _context(request: Request) -> UnsubscribeContext:
    context: UnsubscribeContext = request.app.state.unsubscribe
    return context


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(token: str, request: Request) -> HTMLResponse:
    """The page a citizen reaches from an email's unsubscribe link: a button, nothing changed."""
    context = _context(request)
    citizen_id = verified(context, token)
    if isinstance(citizen_id, tokens.Refusal):
        return refused_page(context, citizen_id)
    lang = _citizen_language(context, citizen_id)
    action = f"/unsubscribe/{token}"
    return HTMLResponse(page(lang, TEXTS[lang]["ask"], form_action=action))


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
async def unsubscribe(token: str, request: Request) -> HTMLResponse:
    """RFC 8058 one-click POST (body `List-Unsubscribe=One-Click`): opt out of email."""
    context = _context(request)
    citizen_id = verified(context, token)
    if isinstance(citizen_id, tokens.Refusal):
        return refused_page(context, citizen_id)
    await run_in_threadpool(_opt_out, context, citizen_id)
    lang = await run_in_threadpool(_citizen_language, context, citizen_id)
    return HTMLResponse(page(lang, TEXTS[lang]["done"]))


def _opt_out(context: UnsubscribeContext, citizen_id: str) -> None:
    with context.sessions.begin() as session:
        directory.opt_out_citizen(
            session=session, citizen_id=citizen_id, channel=Channel.EMAIL, now=context.clock()
        )
