"""`GET /v1/audit` of the events service (admin): the same shape as the rules service's."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from common.problems import Problem
from services.events import audit
from services.events.api import Admin, Svc
from services.events.models import AuditRow

router = APIRouter(tags=["audit"])


class AuditChange(BaseModel):
    """One field that differs: `op` is added, removed or changed."""

    path: str
    op: str
    old: Any = None
    new: Any = None


class AuditEntry(BaseModel):
    """One change: `object_id` is the agency (`dgt`), or the agency and the key prefix or event
    type (`dgt/abcd1234`, `dgt/license.expiring`); `version` is always null here (these
    objects have no versions), kept so both services' entries read alike."""

    seq: int
    at: datetime
    actor: str
    person: str | None = None
    action: str
    kind: str
    object_id: str
    version: int | None = None
    changes: list[AuditChange] = []


class AuditLog(BaseModel):
    items: list[AuditEntry]
    next_before: int | None = Field(
        default=None, description="pass as `before` for the next page; null on the last page"
    )


def _object(value: str) -> tuple[str, str]:
    kind, slash, object_id = value.partition("/")
    if not slash or not object_id or kind not in audit.KINDS:
        raise Problem(
            422,
            "Invalid request",
            "1 field is invalid",
            kind="validation",
            errors=[
                {
                    "path": "object",
                    "message": "expected <kind>/<id>, kind one of " + ", ".join(audit.KINDS),
                }
            ],
        )
    return kind, object_id


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        person=audit.person_of(row.actor),
        action=row.action,
        kind=row.kind,
        object_id=row.object_id,
        changes=[AuditChange.model_validate(c) for c in row.changes],
    )


@router.get("/v1/audit")
def get_audit(
    svc: Svc,
    _admin: Admin,
    *,
    kind: Annotated[str | None, Query(max_length=20)] = None,
    object: Annotated[
        str | None, Query(max_length=700, description="<kind>/<id>, e.g. key/dgt/abcd1234")
    ] = None,
    actor: Annotated[
        str | None,
        Query(max_length=200, description="a recorded actor (admin:ana) or the person (ana)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
) -> AuditLog:
    """Who changed agencies, keys, callbacks, limits and event types, newest first; filter by
    object and by person; page back with `before` = `next_before`."""
    object_id = None
    if object is not None:
        kind, object_id = _object(object)
    actors = [actor, f"admin:{actor}"] if actor else []
    with svc.sessions() as session:
        rows = audit.entries(
            session=session,
            kind=kind,
            object_id=object_id,
            actors=actors,
            limit=limit,
            before=before,
        )
    next_before = rows[-1].seq if len(rows) == limit else None
    return AuditLog(items=[_entry(r) for r in rows], next_before=next_before)
