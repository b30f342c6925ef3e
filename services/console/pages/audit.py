"""The audit log: who (the staff member), what and when, filtered by object and person."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.console.roles import READERS, Table
from services.console.web import GUARDS, Signed, State

router = APIRouter(dependencies=GUARDS)

ACCESS: Table = {
    ("GET", "/audit"): READERS,
}

PAGE = 100
Filter = Annotated[str, Query()]


def who(actor: str) -> str:
    """`admin:ana@example.es` (the console names its member) → the email; else the role."""
    role, _, person = actor.partition(":")
    return person or role


def matches(entry: dict[str, Any], person: str) -> bool:
    return not person or person.lower() in who(entry["actor"]).lower()


@router.get("/audit")
def audit(
    request: Request,
    state: State,
    member: Signed,
    *,
    object: Filter = "",
    person: Filter = "",
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """The rules service's audit log (rules and templates), newest first, a page at a time."""
    # The rules API takes ids of at most 100 characters; a longer one matches nothing anyway.
    object, person = object.strip()[:100], person.strip()[:200]
    kind, _, object_id = object.partition("/")
    if kind not in ("rule", "template"):
        kind, object_id = "", object
    entries = state.services.rules.audit(
        actor=member.email,
        kind=kind or None,
        object_id=object_id or None,
        limit=PAGE,
        before=before,
    )
    rows = [{**entry, "who": who(entry["actor"])} for entry in entries if matches(entry, person)]
    older = entries[-1]["seq"] if len(entries) == PAGE else None
    return state.pages.render(
        request,
        "audit.html",
        entries=rows,
        filters={"object": object, "person": person},
        older=older,
    )
