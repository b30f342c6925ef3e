"""The audit log's route: who changed which rule or template, when, and what changed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from common.problems import Problem
from services.rules import repository
from services.rules.api import DB, Admin
from services.rules.history import DiffChange, change_views
from services.rules.models import AuditRow
from services.rules.repository import Kind

router = APIRouter(prefix="/v1", tags=["rules"])

_KINDS: tuple[Kind, ...] = ("rule", "template")


class AuditEntry(BaseModel):
    """One change. `actor` is the role and, after a colon, the `Avisa-Actor` the admin tool
    named (`admin:ana@example.es`); `person` is that name alone (null without one);
    `changes` is the difference from the version before (empty for a deletion)."""

    seq: int
    at: datetime
    actor: str
    person: str | None = None
    action: str
    kind: str
    object_id: str
    version: int
    changes: list[DiffChange] = []


class AuditLog(BaseModel):
    items: list[AuditEntry]
    next_before: int | None = Field(
        default=None, description="pass as `before` for the next page; null on the last page"
    )


def person_of(actor: str) -> str | None:
    """The named person of a recorded actor (`admin:ana` → `ana`), or None."""
    role, colon, name = actor.partition(":")
    return name if colon and role else None


def _object(value: str) -> tuple[Kind, str]:
    kind, slash, object_id = value.partition("/")
    if not slash or not object_id or kind not in _KINDS:
        raise Problem(
            422,
            "Invalid request",
            "1 field is invalid",
            kind="validation",
            errors=[{"path": "object", "message": "expected rule/<id> or template/<id>"}],
        )
    return kind, object_id


def _documents(rows: list[AuditRow], db: DB) -> dict[tuple[str, str, int], dict[str, Any]]:
    """The documents of each entry's version and the one before it, one query per kind."""
    found: dict[tuple[str, str, int], dict[str, Any]] = {}
    for kind in _KINDS:
        wanted = [
            (r.object_id, v) for r in rows if r.kind == kind for v in (r.version - 1, r.version)
        ]
        documents = repository.documents_at(kind, wanted, session=db)
        found.update({(kind, i, v): d for (i, v), d in documents.items()})
    return found


def _entry(row: AuditRow, documents: dict[tuple[str, str, int], dict[str, Any]]) -> AuditEntry:
    new = documents.get((row.kind, row.object_id, row.version))
    old = documents.get((row.kind, row.object_id, row.version - 1))
    return AuditEntry(
        seq=row.seq,
        at=repository.utc(row.at),
        actor=row.actor,
        person=person_of(row.actor),
        action=row.action,
        kind=row.kind,
        object_id=row.object_id,
        version=row.version,
        changes=[] if row.action == "delete" else change_views(old, new),
    )


@router.get("/audit", response_model=AuditLog)
def get_audit(
    _: Admin,
    db: DB,
    *,
    kind: Annotated[Literal["rule", "template"] | None, Query()] = None,
    object_id: Annotated[str | None, Query(max_length=100)] = None,
    object: Annotated[
        str | None, Query(max_length=120, description="rule/<id> or template/<id>")
    ] = None,
    actor: Annotated[
        str | None,
        Query(max_length=200, description="a recorded actor (admin:ana) or the person (ana)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
) -> AuditLog:
    """Who changed what and how, newest first; filter by object and by person; page back
    with `before` = `next_before`."""
    if object is not None:
        kind, object_id = _object(object)
    actors = [actor, f"admin:{actor}"] if actor else []
    rows = repository.audit(
        session=db, kind=kind, object_id=object_id, actors=actors, limit=limit, before=before
    )
    documents = _documents(rows, db)
    next_before = rows[-1].seq if len(rows) == limit else None
    return AuditLog(items=[_entry(r, documents) for r in rows], next_before=next_before)
