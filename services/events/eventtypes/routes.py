"""HTTP routes of event-type schemas: an agency registers its own; admins name `?agency=`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from common.auth import Principal
from common.problems import Problem
from services.events import audit
from services.events.api import Caller, Svc, for_agency, require_agency
from services.events.errors import NotFound
from services.events.eventtypes import store as eventtype_store
from services.events.eventtypes.registry import not_a_schema, schema_errors
from services.events.gateway_views import EventTypeList, EventTypeOut
from services.events.models import EventType

router = APIRouter(tags=["event types"])

AgencyParam = Annotated[
    str | None, Query(description="the agency (admin keys only; agency keys use their own)")
]
_ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "no valid key"},
    403: {"description": "another agency's types"},
    404: {"description": "no such type"},
}


def _agency(principal: Principal, agency: str | None) -> str:
    """The agency a request is about: an agency key's own, or the admin's `?agency=`."""
    if principal.is_admin:
        if agency is None:
            raise Problem(
                422,
                "Agency missing",
                "admins name the agency with ?agency=",
                kind="validation",
                errors=[{"path": "agency", "message": "required for admin keys"}],
            )
        return agency
    own = principal.agency_id or ""
    for_agency(principal, agency or own)
    return own


def _view(row: EventType) -> EventTypeOut:
    return EventTypeOut(
        agency_id=row.agency_id,
        type=row.type,
        json_schema=row.json_schema,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.put("/v1/event-types/{event_type}", responses=_ERRORS)
def put_event_type(
    event_type: str,
    *,
    schema: Annotated[dict[str, Any], Body(description="a JSON Schema for the events' data")],
    principal: Caller,
    svc: Svc,
    response: Response,
    agency: AgencyParam = None,
    name: audit.ActorHeader = None,
) -> EventTypeOut:
    """Register (201) or replace (200) the schema that this type's `data` must match."""
    owner = _agency(principal, agency)
    errors = schema_errors(schema)
    if errors:
        raise not_a_schema(errors)
    with svc.sessions.begin() as session:
        require_agency(session, owner)
        before = eventtype_store.get(session=session, agency_id=owner, type_=event_type)
        old = {"schema": dict(before.json_schema)} if before is not None else None
        now = _now()
        row, created = eventtype_store.put(
            session=session, agency_id=owner, type_=event_type, schema=schema, now=now
        )
        audit.record(
            session=session,
            actor=audit.actor_of(principal, name),
            action="create" if created else "update",
            kind=audit.EVENT_TYPE,
            object_id=f"{owner}/{event_type}",
            old=old,
            new={"schema": schema},
            now=now,
        )
        view = _view(row)
    svc.event_types.invalidate(owner)
    response.status_code = 201 if created else 200
    return view


@router.get("/v1/event-types", responses=_ERRORS)
def list_event_types(principal: Caller, svc: Svc, agency: AgencyParam = None) -> EventTypeList:
    """The registered types (agency: its own; admin: every agency's, or `?agency=`'s)."""
    owner = agency if principal.is_admin else _agency(principal, agency)
    with svc.sessions() as session:
        rows = eventtype_store.list_of(session=session, agency_id=owner)
    return EventTypeList(event_types=[_view(row) for row in rows])


@router.get("/v1/event-types/{event_type}", responses=_ERRORS)
def get_event_type(
    event_type: str, principal: Caller, svc: Svc, agency: AgencyParam = None
) -> EventTypeOut:
    """One registered type and its schema."""
    owner = _agency(principal, agency)
    with svc.sessions() as session:
        row = eventtype_store.get(session=session, agency_id=owner, type_=event_type)
    if row is None:
        raise NotFound(f"agency '{owner}' has no event type '{event_type}'")
    return _view(row)


@router.delete("/v1/event-types/{event_type}", status_code=204, responses=_ERRORS)
def delete_event_type(
    event_type: str,
    principal: Caller,
    svc: Svc,
    agency: AgencyParam = None,
    name: audit.ActorHeader = None,
) -> Response:
    """Forget the schema: events of this type are then checked only against the envelope."""
    owner = _agency(principal, agency)
    with svc.sessions.begin() as session:
        before = eventtype_store.get(session=session, agency_id=owner, type_=event_type)
        old = {"schema": dict(before.json_schema)} if before is not None else None
        if not eventtype_store.remove(session=session, agency_id=owner, type_=event_type):
            raise NotFound(f"agency '{owner}' has no event type '{event_type}'")
        audit.record(
            session=session,
            actor=audit.actor_of(principal, name),
            action="delete",
            kind=audit.EVENT_TYPE,
            object_id=f"{owner}/{event_type}",
            old=old,
            new=None,
            now=_now(),
        )
    svc.event_types.invalidate(owner)
    return Response(status_code=204)


def _now() -> datetime:
    return datetime.now(UTC)
