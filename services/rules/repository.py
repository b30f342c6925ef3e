"""Queries of the rules service. Every function takes the session as the keyword `session`.

Saving or deleting a rule or template writes a new version row and an audit row in the same
transaction as the change; the caller commits.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.orm import Session

from services.rules.models import (
    AuditRow,
    CurrentDocument,
    DocumentVersion,
    RuleRow,
    RuleVersionRow,
    TemplateRow,
    TemplateVersionRow,
)

Kind = Literal["rule", "template"]
CurrentRow = CurrentDocument
VersionRow = DocumentVersion

_CURRENT: dict[Kind, type[RuleRow] | type[TemplateRow]] = {"rule": RuleRow, "template": TemplateRow}
_VERSIONS: dict[Kind, type[RuleVersionRow] | type[TemplateVersionRow]] = {
    "rule": RuleVersionRow,
    "template": TemplateVersionRow,
}


def utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Saved:
    version: int
    changed: bool


def get(kind: Kind, object_id: str, *, session: Session) -> CurrentRow | None:
    return session.get(_CURRENT[kind], object_id)


def list_current(kind: Kind, *, session: Session) -> list[CurrentRow]:
    model = _CURRENT[kind]
    return list(session.scalars(select(model).order_by(model.id)))


def enabled_rules(*, session: Session) -> list[RuleRow]:
    return list(session.scalars(select(RuleRow).where(RuleRow.enabled.is_(True))))


def versions(kind: Kind, object_id: str, *, session: Session) -> list[VersionRow]:
    model = _VERSIONS[kind]
    query = select(model).where(model.id == object_id).order_by(model.version)
    return list(session.scalars(query))


def version(kind: Kind, object_id: str, number: int, *, session: Session) -> VersionRow | None:
    """One version of a rule or template (deletions included)."""
    return session.get(_VERSIONS[kind], (object_id, number))


def documents_at(
    kind: Kind, wanted: Iterable[tuple[str, int]], *, session: Session
) -> dict[tuple[str, int], dict[str, Any]]:
    """The documents of the (id, version) pairs that exist among `wanted`, in one query."""
    pairs = sorted(set(wanted))
    if not pairs:
        return {}
    model = _VERSIONS[kind]
    query = select(model.id, model.version, model.document).where(
        tuple_(model.id, model.version).in_(pairs)
    )
    return {(row.id, row.version): row.document for row in session.execute(query)}


def would_save(kind: Kind, object_id: str, document: dict[str, Any], *, session: Session) -> Saved:
    """What `save` would answer for `document`, changing nothing."""
    row = get(kind, object_id, session=session)
    if row is not None and row.document == document:
        return Saved(version=row.version, changed=False)
    return Saved(version=_last_version(kind, object_id, session=session) + 1, changed=True)


def _last_version(kind: Kind, object_id: str, *, session: Session) -> int:
    model = _VERSIONS[kind]
    last = session.scalar(select(func.max(model.version)).where(model.id == object_id))
    return int(last or 0)


def _record(
    kind: Kind,
    object_id: str,
    version: int,
    document: dict[str, Any],
    *,
    action: str,
    actor: str,
    now: datetime,
    deleted: bool,
    session: Session,
) -> None:
    session.add(
        _VERSIONS[kind](
            id=object_id,
            version=version,
            document=document,
            changed_at=now,
            changed_by=actor,
            deleted=deleted,
        )
    )
    session.add(
        AuditRow(
            at=now, actor=actor, action=action, kind=kind, object_id=object_id, version=version
        )
    )


def save(
    kind: Kind,
    object_id: str,
    document: dict[str, Any],
    *,
    actor: str,
    now: datetime,
    session: Session,
    action: str | None = None,
) -> Saved:
    """Store `document` as the next version, unless it equals the current one; the audit
    says `action` (default: create or update)."""
    row = get(kind, object_id, session=session)
    if row is not None and row.document == document:
        return Saved(version=row.version, changed=False)
    version = _last_version(kind, object_id, session=session) + 1
    action = action or ("create" if row is None else "update")
    if row is None:
        row = _CURRENT[kind](id=object_id)
        session.add(row)
    row.version, row.document, row.updated_at, row.updated_by = version, document, now, actor
    if isinstance(row, RuleRow):
        row.enabled = bool(document.get("enabled", True))
    _record(
        kind,
        object_id,
        version,
        document,
        action=action,
        actor=actor,
        now=now,
        deleted=False,
        session=session,
    )
    return Saved(version=version, changed=True)


def remove(
    kind: Kind, object_id: str, *, actor: str, now: datetime, session: Session
) -> int | None:
    """Delete the current document, recording a `deleted` version; None when there is none."""
    row = get(kind, object_id, session=session)
    if row is None:
        return None
    version = _last_version(kind, object_id, session=session) + 1
    document = row.document
    session.execute(delete(_CURRENT[kind]).where(_CURRENT[kind].id == object_id))
    _record(
        kind,
        object_id,
        version,
        document,
        action="delete",
        actor=actor,
        now=now,
        deleted=True,
        session=session,
    )
    return version


def rules_using(template_id: str, *, session: Session) -> list[RuleRow]:
    """The current rules whose document names `template_id`."""
    return [
        row
        for row in list_current("rule", session=session)
        if isinstance(row, RuleRow) and row.document.get("template") == template_id
    ]


def audit(
    *,
    session: Session,
    kind: Kind | None = None,
    object_id: str | None = None,
    actors: Collection[str] = (),
    limit: int = 100,
    before: int | None = None,
) -> list[AuditRow]:
    """Audit entries, newest first; `before` pages back by sequence number; `actors`: only
    entries recorded with one of these actors."""
    query = select(AuditRow).order_by(AuditRow.seq.desc()).limit(limit)
    if actors:
        query = query.where(AuditRow.actor.in_(list(actors)))
    if kind is not None:
        query = query.where(AuditRow.kind == kind)
    if object_id is not None:
        query = query.where(AuditRow.object_id == object_id)
    if before is not None:
        query = query.where(AuditRow.seq < before)
    return list(session.scalars(query))


def live_documents(
    *, session: Session
) -> tuple[list[tuple[dict[str, Any], int]], list[dict[str, Any]]]:
    """What the rule engine needs: enabled rules with their versions, and every template."""
    rules = [(row.document, row.version) for row in enabled_rules(session=session)]
    templates = [row.document for row in list_current("template", session=session)]
    return rules, templates
