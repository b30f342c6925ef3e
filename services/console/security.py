"""Cookies that are signed, CSRF tokens, and the security headers of every answer."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable

from fastapi import Request, Response

SESSION_COOKIE = "avisa_console_session"
ANONYMOUS_COOKIE = "avisa_console_visitor"
CSRF_FIELD = "csrf_token"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class Signer:
    """HMAC-SHA256 signatures with the console's secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, purpose: str, value: str) -> str:
        message = f"{purpose}:{value}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def sign(self, value: str) -> str:
        return f"{value}.{self._mac('cookie', value)}"

    def unsign(self, signed: str | None) -> str | None:
        """The value of a cookie we signed, or None when it is missing or tampered with."""
        if not signed or "." not in signed:
            return None
        value, _, mac = signed.rpartition(".")
        return value if hmac.compare_digest(mac, self._mac("cookie", value)) else None

    def csrf_token(self, binding: str) -> str:
        """The form token of one browser: bound to its session, or its visitor cookie."""
        return self._mac("csrf", binding)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def visitor_binding(request: Request, signer: Signer) -> str | None:
    """What a browser's CSRF token is bound to: its session token, else its visitor id."""
    session = signer.unsign(request.cookies.get(SESSION_COOKIE))
    if session:
        return f"session:{session}"
    visitor: str | None = getattr(request.state, "visitor", None)
    return f"visitor:{visitor}" if visitor else None


async def secure(
    request: Request,
    call_next: Callable[[Request], Awaitable[Response]],
    *,
    signer: Signer,
    secure_cookies: bool,
    on_crash: Callable[[Request, Exception], Response],
) -> Response:
    """Every answer gets the headers; a browser without one gets a visitor cookie, which the
    forms it is shown before signing in (sign-in itself) bind their CSRF token to."""
    visitor = signer.unsign(request.cookies.get(ANONYMOUS_COOKIE))
    fresh = visitor is None and not request.url.path.startswith("/static/")
    if fresh:
        visitor = new_token()
    request.state.visitor = visitor
    try:
        response = await call_next(request)
    except Exception as error:  # the 500 page gets the headers too
        response = on_crash(request, error)
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.url.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    if fresh and visitor is not None:
        response.set_cookie(
            ANONYMOUS_COOKIE,
            signer.sign(visitor),
            httponly=True,
            samesite="lax",
            secure=secure_cookies,
            path="/",
        )
    return response
