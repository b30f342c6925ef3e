"""Admin API: rules, templates, their versions, and the audit log (admin key only)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.auth import Authenticator, Principal, require_admin
from common.problems import Problem
from schemas.notifications import Channel
from schemas.rules import Rule, Template
from services.rules import repository, timers, withdrawals
from services.rules.documents import (
    canonical,
    check_rule,
    check_template,
    parse_rule,
    parse_template,
)
from services.rules.errors import DocumentInvalid, conflict, invalid_document, not_found
from services.rules.rendering import Renderer
from services.rules.repository import Kind
from services.rules.rulebook import RuleBook
from services.rules.withdrawals import Withdrawer


class Saved(BaseModel):
    id: str
    version: int
    changed: bool


class Record(BaseModel):
    """A live rule or template: its document and the version it is at."""

    id: str
    version: int
    updated_at: datetime
    updated_by: str
    document: dict[str, Any]


class Records(BaseModel):
    items: list[Record]


class RuleRecord(Record):
    """A live rule; `updated_by` and `updated_at` are its last change's actor and time."""

    pending_reminders: int = Field(
        description="its reminders waiting for their time: what disabling or deleting it cancels"
    )


class RuleRecords(BaseModel):
    items: list[RuleRecord]


class VersionRecord(BaseModel):
    id: str
    version: int
    changed_at: datetime
    changed_by: str
    deleted: bool
    document: dict[str, Any]


class Versions(BaseModel):
    items: list[VersionRecord]


def admin(request: Request) -> Principal:
    """The caller, who must hold the admin key (401 without a key, 403 with another)."""
    authenticator: Authenticator = request.app.state.authenticator
    return require_admin(authenticator.principal(request))


def session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as db:
        yield db


def actor(principal: Principal, name: str | None) -> str:
    """Who to record: the role, plus the person an admin tool names in `Avisa-Actor`."""
    return f"{principal.role}:{name.strip()}" if name and name.strip() else principal.role


Admin = Annotated[Principal, Depends(admin)]
DB = Annotated[Session, Depends(session)]
Document = Annotated[dict[str, Any], Body(description="the rule or template document")]
ActorHeader = Annotated[str | None, Header(alias="Avisa-Actor", max_length=150)]

router = APIRouter(prefix="/v1", tags=["rules"])


def _record(row: repository.CurrentRow) -> Record:
    return Record(
        id=row.id,
        version=row.version,
        updated_at=repository.utc(row.updated_at),
        updated_by=row.updated_by,
        document=row.document,
    )


def _commit(request: Request, db: Session, kind: Kind, object_id: str) -> None:
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise conflict(
            f"the {kind} '{object_id}' was changed at the same time; read it again and retry"
        ) from None
    rulebook: RuleBook | None = getattr(request.app.state, "rulebook", None)
    if rulebook is not None:
        rulebook.invalidate()
    withdrawer: Withdrawer | None = getattr(request.app.state, "withdrawer", None)
    if withdrawer is not None:
        withdrawer.poke()


def _withdraw(db: Session, rule_id: str, version: int, *, detail: str, now: datetime) -> None:
    """Queue the cancellation of a rule's pending reminders, committed with the change; a
    `Withdrawer` cancels them in chunks, each publishing `cancelled` through the status relay.
    Enabling the rule again does not bring them back (they are older than `version`)."""
    withdrawals.record(rule_id, version, detail=detail, now=now, session=db)


def valid_rule(db: Session, body: dict[str, Any], rule_id: str) -> Rule:
    """The rule in `body`, checked as a save checks it (its template must exist); else 422."""
    try:
        rule = parse_rule(body, rule_id)
        template_row = repository.get("template", rule.template, session=db)
        template = Template.model_validate(template_row.document) if template_row else None
        check_rule(rule, template)
    except DocumentInvalid as error:
        raise invalid_document("rule", error) from None
    return rule


def valid_template(
    db: Session, body: dict[str, Any], template_id: str, renderer: Renderer
) -> Template:
    """The template in `body`, checked as a save checks it (against the rules using it)."""
    try:
        template = parse_template(body, template_id)
        users = {
            row.id: [Channel(c) for c in row.document.get("channels", [])]
            for row in repository.rules_using(template.id, session=db)
        }
        check_template(template, renderer, users)
    except DocumentInvalid as error:
        raise invalid_document("template", error) from None
    return template


def save_document(
    request: Request,
    db: Session,
    kind: Kind,
    document: Rule | Template,
    who: str,
    *,
    action: str | None = None,
) -> Saved:
    """Store a checked document as a new version (unless unchanged) and commit; a rule saved
    disabled has its pending reminders withdrawn."""
    now = datetime.now(UTC)
    saved = repository.save(
        kind, document.id, canonical(document), actor=who, now=now, session=db, action=action
    )
    if saved.changed and isinstance(document, Rule) and not document.enabled:
        detail = f"rule {document.id} was disabled (version {saved.version})"
        _withdraw(db, document.id, saved.version, detail=detail, now=now)
    if saved.changed:
        _commit(request, db, kind, document.id)
    return Saved(id=document.id, version=saved.version, changed=saved.changed)


def _get(db: Session, kind: Kind, object_id: str) -> Record:
    row = repository.get(kind, object_id, session=db)
    if row is None:
        raise not_found(kind, object_id)
    return _record(row)


def _versions(db: Session, kind: Kind, object_id: str) -> Versions:
    rows = repository.versions(kind, object_id, session=db)
    if not rows:
        raise not_found(kind, object_id)
    return Versions(
        items=[
            VersionRecord(
                id=r.id,
                version=r.version,
                changed_at=repository.utc(r.changed_at),
                changed_by=r.changed_by,
                deleted=r.deleted,
                document=r.document,
            )
            for r in rows
        ]
    )


def _delete(request: Request, db: Session, kind: Kind, object_id: str, who: str) -> Response:
    now = datetime.now(UTC)
    version = repository.remove(kind, object_id, actor=who, now=now, session=db)
    if version is None:
        raise not_found(kind, object_id)
    if kind == "rule":
        _withdraw(db, object_id, version, detail=f"rule {object_id} was deleted", now=now)
    _commit(request, db, kind, object_id)
    return Response(status_code=204)


@router.put("/rules/{rule_id}", response_model=Saved)
def put_rule(
    rule_id: str,
    *,
    body: Document,
    principal: Admin,
    db: DB,
    request: Request,
    name: ActorHeader = None,
) -> Saved:
    """Create or replace a rule; an identical document makes no new version.

    Saving it disabled cancels its pending reminders in the background, soon after the answer
    (each shows `cancelled`); enabling it again later does not bring them back.
    """
    rule = valid_rule(db, body, rule_id)
    return save_document(request, db, "rule", rule, actor(principal, name))


def _rule_record(row: repository.CurrentRow, pending: int) -> RuleRecord:
    return RuleRecord(
        id=row.id,
        version=row.version,
        updated_at=repository.utc(row.updated_at),
        updated_by=row.updated_by,
        document=row.document,
        pending_reminders=pending,
    )


@router.get("/rules", response_model=RuleRecords)
def list_rules(_: Admin, db: DB) -> RuleRecords:
    """Every live rule with its pending reminders (counted in one grouped query)."""
    counts = timers.pending_counts(session=db)
    rows = repository.list_current("rule", session=db)
    return RuleRecords(items=[_rule_record(r, counts.get(r.id, 0)) for r in rows])


@router.get("/rules/{rule_id}", response_model=RuleRecord)
def get_rule(rule_id: str, _: Admin, db: DB) -> RuleRecord:
    """The rule, and how many pending reminders disabling or deleting it would cancel."""
    row = repository.get("rule", rule_id, session=db)
    if row is None:
        raise not_found("rule", rule_id)
    counts = timers.pending_counts(session=db, rule_id=rule_id)
    return _rule_record(row, counts.get(rule_id, 0))


@router.get("/rules/{rule_id}/versions", response_model=Versions)
def rule_versions(rule_id: str, _: Admin, db: DB) -> Versions:
    """Every version of a rule, oldest first, including deletions."""
    return _versions(db, "rule", rule_id)


@router.delete("/rules/{rule_id}", status_code=204)
def delete_rule(
    rule_id: str, *, principal: Admin, db: DB, request: Request, name: ActorHeader = None
) -> Response:
    """Delete a rule; its pending reminders are cancelled in the background (each shows
    `cancelled`)."""
    return _delete(request, db, "rule", rule_id, actor(principal, name))


@router.put("/templates/{template_id}", response_model=Saved)
def put_template(
    template_id: str,
    *,
    body: Document,
    principal: Admin,
    db: DB,
    request: Request,
    name: ActorHeader = None,
) -> Saved:
    """Create or replace a template; its texts must render against a sample event."""
    template = valid_template(db, body, template_id, request.app.state.renderer)
    return save_document(request, db, "template", template, actor(principal, name))


@router.get("/templates", response_model=Records)
def list_templates(_: Admin, db: DB) -> Records:
    return Records(items=[_record(r) for r in repository.list_current("template", session=db)])


@router.get("/templates/{template_id}", response_model=Record)
def get_template(template_id: str, _: Admin, db: DB) -> Record:
    return _get(db, "template", template_id)


@router.get("/templates/{template_id}/versions", response_model=Versions)
def template_versions(template_id: str, _: Admin, db: DB) -> Versions:
    return _versions(db, "template", template_id)


@router.delete("/templates/{template_id}", status_code=204)
def delete_template(
    template_id: str, *, principal: Admin, db: DB, request: Request, name: ActorHeader = None
) -> Response:
    """Delete a template no rule uses (409 naming the rules that still do)."""
    users = [row.id for row in repository.rules_using(template_id, session=db)]
    if users:
        raise Problem(
            409,
            "Conflict",
            f"template '{template_id}' is used by rules: " + ", ".join(sorted(users)),
            kind="conflict",
        )
    return _delete(request, db, "template", template_id, actor(principal, name))
