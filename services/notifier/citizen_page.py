"""The citizen preference page: `GET/POST /preferences/{token}`, linked from every email.

Server-rendered (works without JavaScript) in the console's design system (GOV.UK Frontend,
served from the same vendored folder, `common.design_system`), Spanish and English from Babel
catalogues, the citizen's language first. The URL token (purpose `preferences`) names the
citizen; a POST also needs the form token: an HMAC of a random cookie (SameSite=Strict) and
the URL token, so another site cannot submit the form. Each URL token has a request budget
per minute (a 429 page past it). A refused token gets a page naming no one: how to get a new
link (404 when not genuine, 410 when expired). Logs carry a hash of the citizen id only."""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from services.notifier import citizen_choices, directory, repository, tokens
from services.notifier.citizen_choices import Choices, FormInvalid, Senders

log = logging.getLogger(__name__)
router = APIRouter(tags=["citizen page"])

HERE = Path(__file__).parent
COOKIE = "avisa_preferences_form"
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",  # the URL holds the citizen's token
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


class RateLimit:
    """At most `per_minute` requests per key in any sliding minute; thread-safe."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_minute = per_minute
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = self._clock()
        with self._lock:
            if len(self._seen) > 10_000:  # forget idle keys rather than grow without bound
                self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > now - 60}
            times = self._seen.setdefault(key, deque())
            while times and times[0] <= now - 60:
                times.popleft()
            if len(times) >= self._per_minute:
                return False
            times.append(now)
            return True


def load_environments(folder: Path = HERE) -> dict[str, Environment]:
    """One Jinja environment per language, its catalogue compiled in memory from .po."""
    found: dict[str, Environment] = {}
    for lang in citizen_choices.LANGUAGES:
        with (folder / "translations" / lang / "LC_MESSAGES" / "messages.po").open("rb") as po:
            catalog = read_po(po, locale=lang)
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        environment = Environment(
            loader=FileSystemLoader(folder / "templates"),
            autoescape=select_autoescape(default=True),
            extensions=["jinja2.ext.i18n"],
        )
        environment.install_gettext_translations(  # type: ignore[attr-defined]
            Translations(fp=compiled, domain="messages"), newstyle=True
        )
        found[lang] = environment
    return found


@dataclass(frozen=True, slots=True)
class PageContext:
    """What the page needs, built in `main`."""

    sessions: repository.SessionFactory
    keys: tokens.TokenKeys
    max_age: timedelta
    default_locale: str
    clock: Callable[[], datetime]
    limit: RateLimit
    environments: dict[str, Environment] = field(default_factory=load_environments)

    def form_token(self, cookie: str, token: str) -> str:
        key = hmac.new(self.keys.current, b"avisa-preferences-form", hashlib.sha256).digest()
        return hmac.new(key, f"{cookie}\x1f{token}".encode(), hashlib.sha256).hexdigest()


def _context(request: Request) -> PageContext:
    context: PageContext = request.app.state.citizen_page
    return context


def _lang(*candidates: str | None) -> str:
    for tag in candidates:
        if tag and tag.split("-")[0].lower() in citizen_choices.LANGUAGES:
            return tag.split("-")[0].lower()
    return citizen_choices.LANGUAGES[0]


def _render(
    context: PageContext, lang: str, name: str, status: int = 200, **values: Any
) -> HTMLResponse:
    html = context.environments[lang].get_template(name).render(lang=lang, **values)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _refused(context: PageContext, request: Request, reason: tokens.Refusal) -> HTMLResponse:
    lang = _lang(request.query_params.get("lang"), context.default_locale)
    expired = reason is tokens.Refusal.EXPIRED
    return _render(context, lang, "new_link.html", 410 if expired else 404, expired=expired)


def _citizen(context: PageContext, token: str) -> str | tokens.Refusal:
    try:
        claims = tokens.verify(
            context.keys,
            token,
            purpose=tokens.PREFERENCES,
            max_age=context.max_age,
            now=context.clock(),
        )
    except tokens.TokenRefused as refused:
        return refused.reason
    return claims.subject


def _limited(context: PageContext, request: Request, token: str) -> HTMLResponse | None:
    if context.limit.allow(hashlib.sha256(token.encode()).hexdigest()):
        return None
    lang = _lang(request.query_params.get("lang"), context.default_locale)
    response = _render(context, lang, "too_many.html", 429)
    response.headers["Retry-After"] = "60"
    return response


@dataclass(frozen=True, slots=True)
class _State:
    senders: Senders
    row: Any
    sms_stopped: bool


def _load(context: PageContext, citizen_id: str) -> _State:
    with context.sessions() as session:
        senders = citizen_choices.senders_of(session=session, citizen_id=citizen_id)
        row = directory.get_preferences(session=session, citizen_id=citizen_id)
        phone = (row.phone if row is not None else None) or senders.phone
        stopped = bool(phone) and bool(
            directory.opted_out_addresses(session=session, addresses=[phone or ""])
        )
        session.expunge_all()
    return _State(senders, row, stopped)


def _form_values(state: _State, choices: Choices | None) -> dict[str, Any]:
    row = state.row
    if choices is not None:
        return {
            "first": choices.order[0].value,
            "channels_on": [c.value for c in choices.order if c not in choices.off],
            "topics_off": sorted(choices.topics_off),
            "quiet": choices.quiet or ("", ""),
        }
    order = (row.channels if row is not None else None) or ["sms", "email"]
    opted = set(row.opt_out if row is not None else [])
    quiet = (row.quiet_start, row.quiet_end) if row is not None and row.quiet_start else ("", "")
    return {
        "first": order[0],
        "channels_on": [c for c in ("sms", "email") if c not in opted],
        "topics_off": list((row.opt_out_topics or []) if row is not None else []),
        "quiet": quiet,
    }


def _page(
    context: PageContext,
    request: Request,
    token: str,
    state: _State,
    *,
    lang: str,
    cookie: str,
    error: FormInvalid | None = None,
    choices: Choices | None = None,
) -> HTMLResponse:
    response = _render(
        context,
        lang,
        "preferences.html",
        400 if error else 200,
        action=f"/preferences/{token}",
        form_token=context.form_token(cookie, token),
        senders=state.senders,
        topics=[t for t in state.senders.topics.values() if not t.critical],
        sms_stopped=state.sms_stopped,
        error=error,
        **_form_values(state, choices),
    )
    if request.cookies.get(COOKIE) != cookie:
        response.set_cookie(
            COOKIE,
            cookie,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/preferences",
        )
    return response


@router.get("/preferences/{token}", response_class=HTMLResponse)
def preferences_page(token: str, request: Request) -> HTMLResponse:
    """The citizen's page: who writes to them and what they can turn off, as a form."""
    context = _context(request)
    limited = _limited(context, request, token)
    if limited is not None:
        return limited
    citizen_id = _citizen(context, token)
    if isinstance(citizen_id, tokens.Refusal):
        return _refused(context, request, citizen_id)
    state = _load(context, citizen_id)
    locale = state.row.locale if state.row is not None else None
    lang = _lang(request.query_params.get("lang"), locale, state.senders.locale)
    cookie = request.cookies.get(COOKIE) or secrets.token_urlsafe(24)
    return _page(context, request, token, state, lang=lang, cookie=cookie)


@router.post("/preferences/{token}", response_class=HTMLResponse)
async def save_preferences(token: str, request: Request) -> HTMLResponse:
    """Save the form (with a valid form token) and confirm; a bad field shows the form again."""
    context = _context(request)
    limited = _limited(context, request, token)
    if limited is not None:
        return limited
    citizen_id = _citizen(context, token)
    if isinstance(citizen_id, tokens.Refusal):
        return _refused(context, request, citizen_id)
    form = await request.form()
    fields: Mapping[str, list[str]] = {key: [str(v) for v in form.getlist(key)] for key in form}
    state = await run_in_threadpool(_load, context, citizen_id)
    lang = _lang(*(fields.get("language") or []), state.row.locale if state.row else None)
    cookie = request.cookies.get(COOKIE, "")
    sent = (fields.get("form_token") or [""])[0]
    if not cookie or not hmac.compare_digest(sent, context.form_token(cookie, token)):
        return _render(context, lang, "form_expired.html", 403, action=f"/preferences/{token}")
    offered = [t.slug for t in state.senders.topics.values() if not t.critical]
    try:
        choices = citizen_choices.parse_form(fields, topics=offered)
    except FormInvalid as error:
        return _page(context, request, token, state, lang=lang, cookie=cookie, error=error)
    await run_in_threadpool(_save, context, citizen_id, choices)
    return _render(context, choices.language, "saved.html", action=f"/preferences/{token}")


def _save(context: PageContext, citizen_id: str, choices: Choices) -> None:
    with context.sessions.begin() as session:
        citizen_choices.save(
            session=session, citizen_id=citizen_id, choices=choices, now=context.clock()
        )
    log.info(
        "citizen changed their preferences",
        extra={
            "citizen_ref": hashlib.sha256(citizen_id.encode()).hexdigest()[:16],
            "changed_by": citizen_choices.CHANGED_BY,
            "channels_off": sorted(c.value for c in choices.off),
            "topics_off": sorted(choices.topics_off),
        },
    )
