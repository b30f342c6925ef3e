"""What every page handler needs, kept on `app.state.console`, and the guard every route passes."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from services.console import sessions
from services.console.clients.services import ServiceClients
from services.console.config import Settings
from services.console.errors import CsrfFailed, Forbidden, SignInRequired
from services.console.rendering import Pages
from services.console.roles import PUBLIC, Access
from services.console.security import CSRF_FIELD, SESSION_COOKIE, Signer, visitor_binding
from services.console.sessions import Lifetime, Member
from services.console.staff import Throttle


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Console:
    """The console's parts, built once in `create_app`."""

    settings: Settings
    signer: Signer
    pages: Pages
    services: ServiceClients
    access: dict[tuple[str, str], Access]
    lifetime: Lifetime
    throttle: Throttle
    db: sessionmaker[Session] | None = None

    @property
    def secure_cookies(self) -> bool:
        if self.settings.console_cookie_secure is not None:
            return self.settings.console_cookie_secure
        return not self.settings.development

    def database(self) -> sessionmaker[Session]:
        if self.db is None:
            raise RuntimeError("the console's database is not open (lifespan not started)")
        return self.db

    def member(self, request: Request) -> Member | None:
        """The signed-in member of this request (looked up once, kept on request.state)."""
        if hasattr(request.state, "member"):
            member: Member | None = request.state.member
            return member
        token = self.signer.unsign(request.cookies.get(SESSION_COOKIE))
        member = None
        if token:
            with self.database().begin() as db:
                member = sessions.current(
                    session=db, token=token, lifetime=self.lifetime, now=utcnow()
                )
        request.state.member = member
        return member


def console(request: Request) -> Console:
    state: Console = request.app.state.console
    return state


def _route_key(request: Request) -> tuple[str, str]:
    route = request.scope.get("route")
    path: str = getattr(route, "path", request.url.path)
    method = "GET" if request.method == "HEAD" else request.method
    return method, path


async def check_csrf(request: Request) -> None:
    """Every POST carries the token of this browser's session (or visitor cookie)."""
    if request.method != "POST":
        return
    state = console(request)
    binding = visitor_binding(request, state.signer)
    sent = (await request.form()).get(CSRF_FIELD)
    expected = state.signer.csrf_token(binding) if binding else ""
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
        raise CsrfFailed


def guard(request: Request) -> Member | None:
    """Let the request through only if the role table allows this member this route."""
    state = console(request)
    access = state.access.get(_route_key(request))
    member = state.member(request)
    if access is None:
        raise Forbidden
    if access == PUBLIC:
        return member
    if member is None:
        raise SignInRequired
    if member.role not in access:
        raise Forbidden
    return member


def signed_in(member: Annotated[Member | None, Depends(guard)]) -> Member:
    """The member of a route that is not public (the guard already required one)."""
    if member is None:
        raise SignInRequired
    return member


GUARDS = [Depends(check_csrf), Depends(guard)]
"""Every router of the console is built with these dependencies."""

State = Annotated[Console, Depends(console)]
Signed = Annotated[Member, Depends(signed_in)]


def database_session(request: Request) -> Iterator[Session]:
    with console(request).database().begin() as db:
        yield db
