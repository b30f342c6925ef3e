"""The notifier's API: notifications with their attempts (admin), and citizen preferences
(admin or agency key).

Agency keys live in the events service's tables, which the notifier does not read: it
verifies them against the key records the events service publishes on keys.v1
(`common.keyfeed` into a `common.auth.KeyRing`)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from common.auth import Authenticator, Principal, require_admin
from common.problems import Problem
from services.notifier import agency_preferences, directory, repository
from services.notifier.models import Attempt, Notification
from services.notifier.preferences import PreferencesView, to_doc

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["notifications"])


def caller(request: Request) -> Principal:
    """The admin or an agency (401 without a valid key)."""
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator.principal(request)


def admin(request: Request) -> Principal:
    return require_admin(caller(request))


Admin = Annotated[Principal, Depends(admin)]
Caller = Annotated[Principal, Depends(caller)]


def actor(principal: Principal) -> str:
    """How a change is attributed: `admin`, or `agency:<id>`."""
    return "admin" if principal.is_admin else f"agency:{principal.agency_id}"


class AttemptView(BaseModel):
    channel: str
    provider: str
    status: str
    provider_reference: str | None
    error_code: str | None
    error_detail: str | None
    at: datetime


class NotificationView(BaseModel):
    id: str
    event: dict[str, str]
    rule: dict[str, Any]
    citizen_id: str
    status: str
    channel: str | None
    detail: str | None
    created_at: datetime
    updated_at: datetime
    request: dict[str, Any]
    attempts: list[AttemptView]


def _attempt_view(attempt: Attempt) -> AttemptView:
    return AttemptView(
        channel=attempt.channel,
        provider=attempt.provider,
        status=attempt.status,
        provider_reference=attempt.provider_reference,
        error_code=attempt.error_code,
        error_detail=attempt.error_detail,
        at=repository.utc(attempt.at),
    )


def _view(row: Notification) -> NotificationView:
    return NotificationView(
        id=row.id,
        event={
            "source": row.event_source,
            "id": row.event_id,
            "type": row.event_type,
            "subject": row.event_subject,
        },
        rule={"id": row.rule_id, "version": row.rule_version},
        citizen_id=row.citizen_id,
        status=row.status,
        channel=row.channel,
        detail=row.detail,
        created_at=repository.utc(row.created_at),
        updated_at=repository.utc(row.updated_at),
        request=row.request,
        attempts=[_attempt_view(a) for a in row.attempts],
    )


@router.get("/notifications/{notification_id}", response_model=NotificationView)
def get_notification(notification_id: str, request: Request, _: Admin) -> NotificationView:
    """A notification the notifier took on, with every provider attempt, oldest first."""
    with request.app.state.sessions() as session:
        row = repository.get_notification(
            session=session, notification_id=notification_id, with_attempts=True
        )
        if row is None:
            raise Problem(
                404, "Not found", f"no notification '{notification_id}'", kind="not-found"
            )
        return _view(row)


def _unknown(citizen_id: str) -> Problem:
    return Problem(404, "Not found", f"no citizen '{citizen_id}' for this agency", kind="not-found")


@router.get("/citizens/{citizen_id}/preferences", response_model=PreferencesView, tags=["citizens"])
def get_preferences(citizen_id: str, request: Request, principal: Caller) -> PreferencesView:
    """The admin: the citizen's shared preferences (an empty document when none were ever
    set). An agency: only what it set for the citizen or what its own events carried, and
    the opt-outs it cannot undo; 404 for a citizen it never set anything for nor notified."""
    _check_citizen_id(citizen_id)
    with request.app.state.sessions() as session:
        if principal.is_admin:
            return to_doc(directory.get_preferences(session=session, citizen_id=citizen_id))
        found = agency_preferences.view(
            session=session, citizen_id=citizen_id, agency_id=principal.agency_id or ""
        )
    if found is None:
        raise _unknown(citizen_id)
    return found


def _check_citizen_id(citizen_id: str) -> None:
    if not citizen_id.strip() or len(citizen_id) > 512 or not _encodable(citizen_id):
        raise Problem(
            422,
            "Invalid citizen id",
            "1 field is invalid",
            kind="validation",
            errors=[{"path": "citizen_id", "message": "1 to 512 characters"}],
        )


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


@router.put("/citizens/{citizen_id}/preferences", response_model=PreferencesView, tags=["citizens"])
def put_preferences(
    citizen_id: str, doc: PreferencesView, request: Request, principal: Caller
) -> PreferencesView:
    """Replace the citizen's preferences (channel order, opt-outs, quiet hours, zone, locale,
    contact details); they override what events say, and opt-outs always win. The admin
    replaces the shared document, which applies to every notification; an agency replaces
    only its own, which applies to its own events' notifications and never undoes the
    citizen's opt-outs. Who made the change is recorded and shown as `changed_by`."""
    _check_citizen_id(citizen_id)
    now = datetime.now(UTC)
    with request.app.state.sessions.begin() as session:
        if principal.is_admin:
            row = directory.put_preferences(
                session=session, citizen_id=citizen_id, doc=doc, now=now
            )
            row.changed_by, row.changed_at = actor(principal), now
            session.flush()
            view = to_doc(row)
        else:
            agency_id = principal.agency_id or ""
            agency_preferences.put(
                session=session, citizen_id=citizen_id, agency_id=agency_id, doc=doc, now=now
            )
            found = agency_preferences.view(
                session=session, citizen_id=citizen_id, agency_id=agency_id
            )
            assert found is not None  # it has just set something
            view = found
    log.info("preferences changed", extra={"by": view.changed_by})
    publisher = getattr(request.app.state, "citizen_publisher", None)
    if publisher is not None and principal.is_admin:
        publisher.wake()  # the rules service plans in the new zone soon after
    return view
