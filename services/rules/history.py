"""Versions of rules and templates: one version, the difference between any two, and restoring
an old one (a new version holding its document). Admin key only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, Field

from services.rules import diffs, repository
from services.rules.api import (
    DB,
    ActorHeader,
    Admin,
    Saved,
    VersionRecord,
    actor,
    save_document,
    valid_rule,
    valid_template,
)
from services.rules.errors import not_found
from services.rules.repository import Kind

router = APIRouter(prefix="/v1", tags=["rules"])

Number = Annotated[int, Path(ge=1, le=2_147_483_647, description="a version number")]
FromVersion = Annotated[
    int, Query(alias="from", ge=1, le=2_147_483_647, description="the older version")
]
ToVersion = Annotated[
    int | None,
    Query(alias="to", ge=1, le=2_147_483_647, description="the newer version (default: latest)"),
]


class DiffChange(BaseModel):
    """One field that differs: `op` is added, removed or changed."""

    path: str
    op: str
    old: Any = None
    new: Any = None


class Diff(BaseModel):
    """What changed from one version to another: field by field, and as a unified YAML diff."""

    id: str
    from_version: int
    to_version: int
    changes: list[DiffChange]
    unified: str = Field(description="a unified diff of the two documents as YAML")


def change_views(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[DiffChange]:
    return [DiffChange(path=c.path, op=c.op, old=c.old, new=c.new) for c in diffs.changes(old, new)]


def _version(db: DB, kind: Kind, object_id: str, number: int) -> repository.VersionRow:
    row = repository.version(kind, object_id, number, session=db)
    if row is None:
        raise not_found(kind, f"{object_id}' version '{number}")
    return row


def _view(row: repository.VersionRow) -> VersionRecord:
    return VersionRecord(
        id=row.id,
        version=row.version,
        changed_at=repository.utc(row.changed_at),
        changed_by=row.changed_by,
        deleted=row.deleted,
        document=row.document,
    )


def _diff(db: DB, kind: Kind, object_id: str, older: int, newer: int | None) -> Diff:
    if newer is None:
        versions = repository.versions(kind, object_id, session=db)
        if not versions:
            raise not_found(kind, object_id)
        newer = versions[-1].version
    old, new = _version(db, kind, object_id, older), _version(db, kind, object_id, newer)
    return Diff(
        id=object_id,
        from_version=older,
        to_version=newer,
        changes=change_views(old.document, new.document),
        unified=diffs.unified(
            old.document,
            new.document,
            old_name=f"{kind}/{object_id} version {older}",
            new_name=f"{kind}/{object_id} version {newer}",
        ),
    )


@router.get("/rules/{rule_id}/versions/{number}", response_model=VersionRecord)
def rule_version(rule_id: str, number: Number, _: Admin, db: DB) -> VersionRecord:
    """One version of a rule with its document (404 if there is no such version)."""
    return _view(_version(db, "rule", rule_id, number))


@router.get("/templates/{template_id}/versions/{number}", response_model=VersionRecord)
def template_version(template_id: str, number: Number, _: Admin, db: DB) -> VersionRecord:
    """One version of a template with its document (404 if there is no such version)."""
    return _view(_version(db, "template", template_id, number))


@router.get("/rules/{rule_id}/diff", response_model=Diff)
def rule_diff(rule_id: str, _: Admin, db: DB, older: FromVersion, newer: ToVersion = None) -> Diff:
    """What changed between two versions of a rule (`?from=1&to=3`; `to` defaults to the
    latest); either order works."""
    return _diff(db, "rule", rule_id, older, newer)


@router.get("/templates/{template_id}/diff", response_model=Diff)
def template_diff(
    template_id: str, _: Admin, db: DB, older: FromVersion, newer: ToVersion = None
) -> Diff:
    """What changed between two versions of a template (`?from=1&to=3`)."""
    return _diff(db, "template", template_id, older, newer)


@router.post("/rules/{rule_id}/versions/{number}/restore", response_model=Saved)
def restore_rule(
    rule_id: str,
    number: Number,
    *,
    principal: Admin,
    db: DB,
    request: Request,
    name: ActorHeader = None,
) -> Saved:
    """Save an old version's document as a new version (checked as a PUT is; 422 if it no
    longer fits, e.g. its template is gone). Restoring a disabled version withdraws the
    rule's pending reminders, as saving it disabled does."""
    old = _version(db, "rule", rule_id, number)
    rule = valid_rule(db, old.document, rule_id)
    who = actor(principal, name)
    return save_document(request, db, "rule", rule, who, action="restore")


@router.post("/templates/{template_id}/versions/{number}/restore", response_model=Saved)
def restore_template(
    template_id: str,
    number: Number,
    *,
    principal: Admin,
    db: DB,
    request: Request,
    name: ActorHeader = None,
) -> Saved:
    """Save an old version's document as a new version of the template (checked as a PUT is,
    also against the rules that use it now)."""
    old = _version(db, "template", template_id, number)
    template = valid_template(db, old.document, template_id, request.app.state.renderer)
    who = actor(principal, name)
    return save_document(request, db, "template", template, who, action="restore")
