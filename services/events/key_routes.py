"""HTTP routes of agencies and their keys (admin): create an agency, create, list and revoke
its keys; each change is audited with the `Avisa-Actor` an admin tool names."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response
from sqlalchemy.exc import IntegrityError

from common.auth import hash_key, new_key
from services.events import audit, repository, views
from services.events.api import Admin, Svc, require_agency
from services.events.errors import AlreadyExists, NotFound
from services.events.keys import key_prefix

router = APIRouter()


def _now() -> datetime:
    return datetime.now(UTC)


@router.post("/v1/agencies", status_code=201, tags=["agencies"])
def create_agency(
    body: views.AgencyIn, svc: Svc, principal: Admin, name: audit.ActorHeader = None
) -> views.AgencyOut:
    """Register an agency (admin)."""
    now = _now()
    try:
        with svc.sessions.begin() as session:
            agency = repository.add_agency(
                session=session, agency_id=body.id, name=body.name, now=now
            )
            audit.record(
                session=session,
                actor=audit.actor_of(principal, name),
                action="create",
                kind=audit.AGENCY,
                object_id=body.id,
                old=None,
                new={"id": body.id, "name": body.name},
                now=now,
            )
    except IntegrityError:
        raise AlreadyExists(f"agency '{body.id}' already exists") from None
    return views.AgencyOut(id=agency.id, name=agency.name, created_at=agency.created_at)


@router.post("/v1/agencies/{agency_id}/keys", status_code=201, tags=["agencies"])
def create_key(
    agency_id: str, svc: Svc, principal: Admin, name: audit.ActorHeader = None
) -> views.NewKey:
    """Create a key for the agency (admin); the key is in this answer only."""
    key, now = new_key(), _now()
    with svc.sessions.begin() as session:
        require_agency(session, agency_id)
        repository.add_key(
            session=session,
            agency_id=agency_id,
            key_hash=hash_key(key),
            prefix=key_prefix(key),
            now=now,
        )
        audit.record(
            session=session,
            actor=audit.actor_of(principal, name),
            action="create",
            kind=audit.KEY,
            object_id=f"{agency_id}/{key_prefix(key)}",
            old=None,
            new={"prefix": key_prefix(key)},
            now=now,
        )
    return views.NewKey(key=key, prefix=key_prefix(key), agency_id=agency_id, created_at=now)


@router.get("/v1/agencies/{agency_id}/keys", tags=["agencies"])
def list_keys(agency_id: str, svc: Svc, _admin: Admin) -> views.KeyList:
    """The agency's keys by prefix (admin); the keys themselves are never shown again."""
    with svc.sessions() as session:
        require_agency(session, agency_id)
        keys = repository.list_keys(session=session, agency_id=agency_id)
    return views.KeyList(
        keys=[
            views.KeyInfo(prefix=k.prefix, created_at=k.created_at, revoked_at=k.revoked_at)
            for k in keys
        ]
    )


@router.delete("/v1/agencies/{agency_id}/keys/{prefix}", status_code=204, tags=["agencies"])
def revoke_key(
    agency_id: str, prefix: str, svc: Svc, principal: Admin, name: audit.ActorHeader = None
) -> Response:
    """Revoke the agency's live key(s) with that prefix (admin)."""
    now = _now()
    with svc.sessions.begin() as session:
        revoked = repository.revoke_keys(
            session=session, agency_id=agency_id, prefix=prefix, now=now
        )
        if revoked:
            audit.record(
                session=session,
                actor=audit.actor_of(principal, name),
                action="revoke",
                kind=audit.KEY,
                object_id=f"{agency_id}/{prefix}",
                old={"revoked_at": None},
                new={"revoked_at": now.isoformat()},
                now=now,
            )
    svc.key_lookup.invalidate()
    if not revoked:
        raise NotFound(f"agency '{agency_id}' has no live key '{prefix}'")
    return Response(status_code=204)
