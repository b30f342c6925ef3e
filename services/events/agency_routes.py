"""HTTP routes of an agency's callback endpoint and limits (admin, or the agency itself)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Response

from common.problems import Problem
from services.events import audit, limit_store, repository
from services.events.api import Admin, Caller, Svc, for_agency, require_agency
from services.events.callbacks import store as callback_store
from services.events.callbacks.targets import target_error
from services.events.errors import NotFound
from services.events.gateway_views import (
    AgencyList,
    AgencySummary,
    CallbackIn,
    CallbackOut,
    LimitsIn,
    LimitsOut,
)
from services.events.limits import utc_day
from services.events.models import Callback

router = APIRouter(tags=["agencies"])

_ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "no valid key"},
    403: {"description": "another agency's key"},
    404: {"description": "no such agency"},
}


def _now() -> datetime:
    return datetime.now(UTC)


def _audited_callback(callback: Callback | None) -> dict[str, Any]:
    """What the audit compares of an endpoint (the secret only to see whether it changed)."""
    if callback is None:
        return {}
    return {"url": callback.url, "state": callback.state, "secret": callback.secret}


def _callback_view(callback: Callback, pending: int) -> CallbackOut:
    return CallbackOut(
        agency_id=callback.agency_id,
        url=callback.url,
        state=callback.state,
        failures=callback.failures,
        failing_since=callback.failing_since,
        last_error=callback.last_error,
        last_success_at=callback.last_success_at,
        suspended_at=callback.suspended_at,
        pending=pending,
        updated_at=callback.updated_at,
    )


@router.put("/v1/agencies/{agency_id}/callback", responses=_ERRORS)
def put_callback(
    agency_id: str,
    body: CallbackIn,
    principal: Caller,
    svc: Svc,
    name: audit.ActorHeader = None,
) -> CallbackOut:
    """Set where the agency's status changes are POSTed; resumes a suspended endpoint."""
    for_agency(principal, agency_id)
    if not svc.settings.development and not body.url.startswith("https://"):
        raise Problem(
            422,
            "Invalid callback",
            "callback URLs must use https",
            kind="validation",
            errors=[{"path": "url", "message": "expected an https:// URL"}],
        )
    refusal = target_error(body.url, allow_private=svc.settings.callback_allow_private)
    if refusal is not None:
        raise Problem(
            422,
            "Invalid callback",
            "callbacks may only go to public addresses",
            kind="validation",
            errors=[{"path": "url", "message": refusal}],
        )
    with svc.sessions.begin() as session:
        require_agency(session, agency_id)
        before = _audited_callback(callback_store.get(session=session, agency_id=agency_id))
        secret_changed = before.pop("secret", None) != body.secret
        now = _now()
        callback = callback_store.put(
            session=session, agency_id=agency_id, url=body.url, secret=body.secret, now=now
        )
        audit.record(
            session=session,
            actor=audit.actor_of(principal, name),
            action="update" if before else "create",
            kind=audit.CALLBACK,
            object_id=agency_id,
            old=before or None,
            new={"url": body.url, "state": callback.state},
            now=now,
            hidden=["secret"] if secret_changed else [],
        )
        session.flush()
        view = _callback_view(
            callback, callback_store.pending_count(session=session, agency_id=agency_id)
        )
    svc.wake_callbacks()
    return view


@router.get("/v1/agencies/{agency_id}/callback", responses=_ERRORS)
def get_callback(agency_id: str, principal: Caller, svc: Svc) -> CallbackOut:
    """The endpoint, its state and its last error (never the secret)."""
    for_agency(principal, agency_id)
    with svc.sessions() as session:
        callback = callback_store.get(session=session, agency_id=agency_id)
        if callback is None:
            raise NotFound(f"agency '{agency_id}' has no callback")
        pending = callback_store.pending_count(session=session, agency_id=agency_id)
    return _callback_view(callback, pending)


@router.delete("/v1/agencies/{agency_id}/callback", status_code=204, responses=_ERRORS)
def delete_callback(
    agency_id: str, principal: Caller, svc: Svc, name: audit.ActorHeader = None
) -> Response:
    """Stop POSTing status changes; whatever was waiting is dropped."""
    for_agency(principal, agency_id)
    with svc.sessions.begin() as session:
        before = _audited_callback(callback_store.get(session=session, agency_id=agency_id))
        before.pop("secret", None)
        if not callback_store.remove(session=session, agency_id=agency_id):
            raise NotFound(f"agency '{agency_id}' has no callback")
        audit.record(
            session=session,
            actor=audit.actor_of(principal, name),
            action="delete",
            kind=audit.CALLBACK,
            object_id=agency_id,
            old=before,
            new=None,
            now=_now(),
        )
    return Response(status_code=204)


def _limits_view(svc: Svc, agency_id: str) -> LimitsOut:
    with svc.sessions() as session:
        require_agency(session, agency_id)
        row = limit_store.get(session=session, agency_id=agency_id)
        used = limit_store.used(session=session, agency_id=agency_id, day=utc_day(_now()))
    limits = svc.limits(agency_id)
    custom = row is not None and (row.requests_per_minute or row.daily_events) is not None
    return LimitsOut(
        agency_id=agency_id,
        requests_per_minute=limits.requests_per_minute,
        daily_events=limits.daily_events,
        used_today=used,
        custom=custom,
    )


@router.put("/v1/agencies/{agency_id}/limits", responses=_ERRORS)
def put_limits(
    agency_id: str, body: LimitsIn, svc: Svc, principal: Admin, name: audit.ActorHeader = None
) -> LimitsOut:
    """Set the agency's request rate per key and daily cap (admin); null means the default."""
    with svc.sessions.begin() as session:
        require_agency(session, agency_id)
        row = limit_store.get(session=session, agency_id=agency_id)
        fields = ("requests_per_minute", "daily_events")
        old = {f: getattr(row, f) for f in fields} if row is not None else None
        audit.record(
            session=session,
            actor=audit.actor_of(principal, name),
            action="update" if row is not None else "create",
            kind=audit.LIMITS,
            object_id=agency_id,
            old=old,
            new=body.model_dump(),
            now=_now(),
        )
        limit_store.put(
            session=session,
            agency_id=agency_id,
            requests_per_minute=body.requests_per_minute,
            daily_events=body.daily_events,
            now=_now(),
        )
    svc.limits.invalidate(agency_id)
    return _limits_view(svc, agency_id)


@router.get("/v1/agencies/{agency_id}/limits", responses=_ERRORS)
def get_limits(agency_id: str, principal: Caller, svc: Svc) -> LimitsOut:
    """The limits in force and today's accepted events (admin, or the agency itself)."""
    for_agency(principal, agency_id)
    return _limits_view(svc, agency_id)


def _summaries(svc: Svc, agency_id: str | None) -> list[AgencySummary]:
    with svc.sessions() as session:
        agencies = repository.list_agencies(session=session, agency_id=agency_id)
        keys = repository.live_key_counts(session=session)
        callbacks = repository.callback_states(session=session)
        return [
            AgencySummary(
                id=a.id,
                name=a.name,
                created_at=a.created_at,
                live_keys=keys.get(a.id, 0),
                callback_state=callbacks.get(a.id),
            )
            for a in agencies
        ]


@router.get("/v1/agencies", responses=_ERRORS)
def list_agencies(principal: Caller, svc: Svc) -> AgencyList:
    """Every agency (admin), or an agency key's own, with its live keys and callback state."""
    own = None if principal.is_admin else principal.agency_id or ""
    return AgencyList(agencies=_summaries(svc, own))


@router.get("/v1/agencies/{agency_id}", responses=_ERRORS)
def get_agency(agency_id: str, principal: Caller, svc: Svc) -> AgencySummary:
    """One agency, with its live keys and callback state (admin, or the agency itself)."""
    for_agency(principal, agency_id)
    found = _summaries(svc, agency_id)
    if not found:
        raise NotFound(f"no agency '{agency_id}'")
    return found[0]
