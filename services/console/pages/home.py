"""The home page after sign-in, and the accessibility statement."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.console.roles import EVERYONE, PUBLIC, Table
from services.console.web import GUARDS, Signed, State

router = APIRouter(dependencies=GUARDS)

ACCESS: Table = {
    ("GET", "/"): EVERYONE,
    ("GET", "/accessibility"): PUBLIC,
}


@router.get("/")
def home(request: Request, state: State, member: Signed) -> Response:
    return state.pages.render(request, "home.html")


@router.get("/accessibility")
def accessibility(request: Request, state: State) -> Response:
    """Spain's RD 1112/2018 model statement, in the reader's language."""
    return state.pages.render(request, "accessibility.html")
