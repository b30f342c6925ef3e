"""Signing in and out, and choosing the language."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from services.console import i18n, sessions, staff
from services.console.roles import EVERYONE, PUBLIC, Table
from services.console.security import SESSION_COOKIE
from services.console.web import GUARDS, Console, State, utcnow

log = logging.getLogger(__name__)
router = APIRouter(dependencies=GUARDS)

ACCESS: Table = {
    ("GET", "/sign-in"): PUBLIC,
    ("POST", "/sign-in"): PUBLIC,
    ("POST", "/sign-out"): EVERYONE,
    ("GET", "/language/{code}"): PUBLIC,
}

Field = Annotated[str, Form()]
LONGEST = 500
"""Longer emails or passwords are refused beside the field (and never hashed)."""


def safe_next(target: str | None) -> str:
    """Only a path on this site: an absolute or protocol-relative URL would be an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/sign-in", name="sign_in_page")
def sign_in_page(request: Request, state: State, next: str = "/") -> Response:
    if state.member(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _form(request, state, next=next)


def _form(
    request: Request,
    state: Console,
    *,
    next: str,
    email: str = "",
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return state.pages.render(
        request,
        "sign_in.html",
        status=status,
        next=safe_next(next),
        email=email,
        errors=errors or {},
        development=state.settings.development,
    )


def _problems(request: Request, state: Console, email: str, password: str) -> dict[str, str]:
    _ = state.pages.gettext
    errors: dict[str, str] = {}
    if not email.strip():
        errors["email"] = _(request, "Enter your email address")
    elif "@" not in email or len(email) > LONGEST:
        errors["email"] = _(request, "Enter an email address like name@example.es")
    if not password:
        errors["password"] = _(request, "Enter your password")
    elif len(password) > LONGEST:
        errors["password"] = _(request, "The email address or password is not right")
    return errors


@router.post("/sign-in")
def sign_in(
    request: Request,
    state: State,
    *,
    email: Field = "",
    password: Field = "",
    code: Field = "",
    next: Field = "/",
) -> Response:
    errors = _problems(request, state, email, password)
    if errors:
        return _form(request, state, next=next, email=email, errors=errors, status=422)
    now = utcnow()
    with state.database().begin() as db:
        outcome = staff.sign_in(
            session=db, email=email, password=password, code=code, throttle=state.throttle, now=now
        )
        token = _start(db, outcome, now)
    if token is None:
        log.info("sign-in refused", extra={"reason": outcome.problem})
        message = _refusal(request, state, outcome)
        field = "code" if outcome.problem == "code" else "email"
        return _form(request, state, next=next, email=email, errors={field: message}, status=422)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        state.signer.sign(token),
        max_age=int(state.lifetime.absolute.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=state.secure_cookies,
        path="/",
    )
    return response


def _start(db: Session, outcome: staff.SignInOutcome, now: datetime) -> str | None:
    if outcome.staff is None:
        return None
    return sessions.start(session=db, staff=outcome.staff, now=now)


def _refusal(request: Request, state: Console, outcome: staff.SignInOutcome) -> str:
    _ = state.pages.gettext
    if outcome.problem == "locked" and outcome.wait is not None:
        seconds = max(1, round(outcome.wait.total_seconds()))
        template = _(request, "Too many failed attempts. Wait {seconds} seconds and try again.")
        return template.format(seconds=i18n.format_count(seconds, state.pages.locale(request)))
    if outcome.problem == "code":
        return _(request, "The security code is not right, or it has expired")
    return _(request, "The email address or password is not right")


@router.post("/sign-out")
def sign_out(request: Request, state: State) -> Response:
    token = state.signer.unsign(request.cookies.get(SESSION_COOKIE))
    if token:
        with state.database().begin() as db:
            sessions.end(session=db, token=token, now=utcnow())
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/language/{code}")
def choose_language(code: str, next: str = "/") -> Response:
    """A link, not a form: it works without JavaScript and only sets a preference."""
    response = RedirectResponse(safe_next(next), status_code=303)
    if code in i18n.LOCALES:
        response.set_cookie(
            i18n.COOKIE, code, max_age=365 * 24 * 3600, httponly=True, samesite="lax", path="/"
        )
    return response
