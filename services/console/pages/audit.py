"""The audit log: who (the staff member), what and when, filtered by object and person."""

from __future__ import annotations

from datetime import datetime
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


def _moment(entry: dict[str, Any]) -> datetime:
    at = entry["at"]
    return at if isinstance(at, datetime) else datetime.fromisoformat(str(at))


EVENTS_KINDS = ("agency", "key", "callback", "limits", "event-type")


def _events_audit(state: State, actor: str, wanted: str) -> list[dict[str, Any]]:
    """The events service's changes: `<kind>/<id>` filtered by the API, a bare id (an agency)
    here, as the object itself or anything under it (`dgt`, `dgt/abcd1234`)."""
    if wanted.partition("/")[0] in EVENTS_KINDS:
        return state.services.events.audit(actor=actor, object_filter=wanted, limit=PAGE)
    entries = state.services.events.audit(actor=actor, object_filter=None, limit=PAGE)
    if not wanted:
        return entries
    return [
        e
        for e in entries
        if e.get("object_id") == wanted or str(e.get("object_id", "")).startswith(f"{wanted}/")
    ]


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
    """The rules service's audit log (rules and templates) and, on the first page, the events
    service's when it has one; newest first, a page at a time."""
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
    if before is None and not kind:
        extra = _events_audit(state, member.email, object)
        entries = sorted([*entries, *extra], key=_moment, reverse=True)
    rows = [{**entry, "who": who(entry["actor"])} for entry in entries if matches(entry, person)]
    rules_seen = [e for e in entries if "seq" in e and e.get("kind") in ("rule", "template")]
    older = rules_seen[-1]["seq"] if len(rules_seen) >= PAGE else None
    return state.pages.render(
        request,
        "audit.html",
        entries=rows,
        filters={"object": object, "person": person},
        older=older,
    )
