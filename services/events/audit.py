"""The events service's audit log: who changed an agency, a key, a callback, limits or an
event type through the API, when, and which fields changed. Each change's row is written in
the transaction of the change itself; the caller commits."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import Header
from sqlalchemy import select
from sqlalchemy.orm import Session

from common.auth import Principal
from services.events.models import AuditRow

AGENCY, KEY, CALLBACK, LIMITS, EVENT_TYPE = "agency", "key", "callback", "limits", "event-type"
KINDS = (AGENCY, KEY, CALLBACK, LIMITS, EVENT_TYPE)

ActorHeader = Annotated[
    str | None,
    Header(alias="Avisa-Actor", max_length=150, description="the person an admin tool acts for"),
]


def actor_of(principal: Principal, name: str | None) -> str:
    """Who to record: `admin:<name>` when an admin tool names the person in `Avisa-Actor`,
    `admin` without one, `agency:<id>` for an agency's own key."""
    if not principal.is_admin:
        return f"agency:{principal.agency_id}"
    return f"admin:{name.strip()}" if name and name.strip() else "admin"


def person_of(actor: str) -> str | None:
    """The person an admin tool named (`admin:ana` → `ana`), else None."""
    role, colon, name = actor.partition(":")
    return name if role == "admin" and colon else None


def _walk(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str) -> Iterator[dict[str, Any]]:
    for key in [*old, *(k for k in new if k not in old)]:
        path = f"{prefix}.{key}" if prefix else key
        before, after = old.get(key), new.get(key)
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            yield from _walk(before, after, path)
        elif key not in new:
            yield {"path": path, "op": "removed", "old": before, "new": None}
        elif key not in old:
            yield {"path": path, "op": "added", "old": None, "new": after}
        elif before != after:
            yield {"path": path, "op": "changed", "old": before, "new": after}


def changes(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The fields that differ from `old` to `new` (None: the object did not exist)."""
    return list(_walk(old or {}, new or {}, ""))


def record(
    *,
    session: Session,
    actor: str,
    action: str,
    kind: str,
    object_id: str,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    now: datetime,
    hidden: Collection[str] = (),
) -> None:
    """Add the audit row of one change (what changed from `old` to `new`); `hidden` names
    fields that changed but whose values are never recorded (a callback's secret)."""
    found = changes(old, new)
    found += [{"path": path, "op": "changed", "old": None, "new": None} for path in hidden]
    session.add(
        AuditRow(at=now, actor=actor, action=action, kind=kind, object_id=object_id, changes=found)
    )


def entries(
    *,
    session: Session,
    kind: str | None = None,
    object_id: str | None = None,
    actors: Collection[str] = (),
    limit: int = 100,
    before: int | None = None,
) -> list[AuditRow]:
    """Audit rows, newest first; `before` pages back by sequence number."""
    query = select(AuditRow).order_by(AuditRow.seq.desc()).limit(limit)
    if kind is not None:
        query = query.where(AuditRow.kind == kind)
    if object_id is not None:
        query = query.where(AuditRow.object_id == object_id)
    if actors:
        query = query.where(AuditRow.actor.in_(list(actors)))
    if before is not None:
        query = query.where(AuditRow.seq < before)
    return list(session.scalars(query))
