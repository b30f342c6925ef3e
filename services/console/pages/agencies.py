"""Agencies and their keys and callback endpoint (the events service's API, as staff see it)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from services.console.errors import NotFound, ServiceError
from services.console.roles import ADMINS, EVERYONE, MANAGERS, Table
from services.console.sessions import Member
from services.console.web import GUARDS, Console, Signed, State

router = APIRouter(dependencies=GUARDS)

ACCESS: Table = {
    ("GET", "/agencies"): EVERYONE,
    ("POST", "/agencies"): ADMINS,
    ("GET", "/agencies/{agency_id}"): EVERYONE,
    ("POST", "/agencies/{agency_id}/keys"): MANAGERS,
    ("GET", "/agencies/{agency_id}/keys/{prefix}/revoke"): MANAGERS,
    ("POST", "/agencies/{agency_id}/keys/{prefix}/revoke"): MANAGERS,
    ("POST", "/agencies/{agency_id}/callback"): MANAGERS,
}

Text = Annotated[str, Form()]
"""No length limit here: a too-long value is shown beside its field, not refused as a page."""


def _visible(state: Console, member: Member, agency_id: str) -> dict[str, Any]:
    """The agency, if this member may see it; another agency's is 'not found', not 'forbidden'."""
    if not member.may_see(agency_id):
        raise NotFound(agency_id)
    return state.services.events.agency(agency_id, actor=member.email)


def _managed(state: Console, member: Member, agency_id: str) -> dict[str, Any]:
    if not member.may_manage(agency_id):
        raise NotFound(agency_id)
    return _visible(state, member, agency_id)


def _list(
    request: Request,
    state: Console,
    member: Member,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    agencies = [
        a for a in state.services.events.agencies(actor=member.email) if member.may_see(a["id"])
    ]
    return state.pages.render(
        request,
        "agencies/list.html",
        status=status,
        agencies=agencies,
        form=form or {"id": "", "name": ""},
        errors=errors or {},
    )


@router.get("/agencies")
def agencies(request: Request, state: State, member: Signed) -> Response:
    return _list(request, state, member)


def _agency_problems(request: Request, state: Console, agency_id: str, name: str) -> dict[str, str]:
    _ = state.pages.gettext
    errors: dict[str, str] = {}
    if not agency_id.strip():
        errors["id"] = _(request, "Enter the agency's id, like dgt")
    if not name.strip():
        errors["name"] = _(request, "Enter the agency's name")
    elif len(name) > 256:
        errors["name"] = _(request, "The name must have at most 256 characters")
    return errors


@router.post("/agencies")
def create_agency(
    request: Request, state: State, member: Signed, id: Text = "", name: Text = ""
) -> Response:
    form = {"id": id.strip(), "name": name.strip()}
    errors = _agency_problems(request, state, form["id"], form["name"])
    if not errors:
        try:
            state.services.events.create_agency(form["id"], form["name"], actor=member.email)
        except ServiceError as error:
            if error.status not in (409, 422):
                raise
            errors = _field_errors(request, state, error, {"id", "name"}, default="id")
    if errors:
        return _list(request, state, member, form=form, errors=errors, status=422)
    return RedirectResponse(f"/agencies/{form['id']}?created=1", status_code=303)


def _field_errors(
    request: Request, state: Console, error: ServiceError, fields: set[str], *, default: str
) -> dict[str, str]:
    """The service's errors, each beside its field (anything else beside `default`)."""
    if error.status == 409:
        return {default: state.pages.gettext(request, "An agency with this id already exists")}
    found = error.field_errors()
    return {(path if path in fields else default): message for path, message in found.items()}


def _agency_page(
    request: Request,
    state: Console,
    member: Member,
    agency: dict[str, Any],
    *,
    new_key: dict[str, Any] | None = None,
    callback_form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    agency_id = agency["id"]
    keys = state.services.events.keys(agency_id, actor=member.email)
    callback = state.services.events.callback(agency_id, actor=member.email)
    return state.pages.render(
        request,
        "agencies/agency.html",
        status=status,
        agency=agency,
        keys=sorted(keys, key=lambda k: (k["revoked_at"] is not None, k["prefix"])),
        callback=callback,
        new_key=new_key,
        may_manage=member.may_manage(agency_id),
        callback_form=callback_form or {"url": (callback or {}).get("url", "")},
        errors=errors or {},
        notice=_notice(request, state),
    )


def _notice(request: Request, state: Console) -> str | None:
    _ = state.pages.gettext
    if request.query_params.get("created"):
        return _(request, "Agency created")
    if revoked := request.query_params.get("revoked"):
        return _(request, "Key {prefix} revoked").format(prefix=revoked[:20])
    if request.query_params.get("callback"):
        return _(request, "Callback endpoint saved")
    return None


@router.get("/agencies/{agency_id}")
def agency(request: Request, agency_id: str, state: State, member: Signed) -> Response:
    return _agency_page(request, state, member, _visible(state, member, agency_id))


@router.post("/agencies/{agency_id}/keys")
def create_key(request: Request, agency_id: str, state: State, member: Signed) -> Response:
    """The new key is in this answer only (never stored by the console, never shown again)."""
    found = _managed(state, member, agency_id)
    key = state.services.events.create_key(agency_id, actor=member.email)
    return _agency_page(request, state, member, found, new_key=key, status=201)


@router.get("/agencies/{agency_id}/keys/{prefix}/revoke")
def confirm_revoke(
    request: Request, agency_id: str, prefix: str, state: State, member: Signed
) -> Response:
    found = _managed(state, member, agency_id)
    keys = state.services.events.keys(agency_id, actor=member.email)
    if not any(k["prefix"] == prefix and k["revoked_at"] is None for k in keys):
        raise NotFound(prefix)
    return state.pages.render(request, "agencies/revoke.html", agency=found, prefix=prefix)


@router.post("/agencies/{agency_id}/keys/{prefix}/revoke")
def revoke(request: Request, agency_id: str, prefix: str, state: State, member: Signed) -> Response:
    _managed(state, member, agency_id)
    state.services.events.revoke_key(agency_id, prefix, actor=member.email)
    return RedirectResponse(f"/agencies/{agency_id}?revoked={prefix}", status_code=303)


def _callback_problems(request: Request, state: Console, url: str, secret: str) -> dict[str, str]:
    _ = state.pages.gettext
    errors: dict[str, str] = {}
    if not url.strip():
        errors["url"] = _(request, "Enter the URL the status changes are sent to")
    if not 16 <= len(secret) <= 256:
        errors["secret"] = _(request, "The secret must have from 16 to 256 characters")
    return errors


@router.post("/agencies/{agency_id}/callback")
def set_callback(
    request: Request,
    agency_id: str,
    state: State,
    member: Signed,
    *,
    url: Text = "",
    secret: Text = "",
) -> Response:
    found = _managed(state, member, agency_id)
    errors = _callback_problems(request, state, url, secret)
    if not errors:
        try:
            state.services.events.put_callback(agency_id, url.strip(), secret, actor=member.email)
        except ServiceError as error:
            if error.status != 422:
                raise
            errors = _field_errors(request, state, error, {"url", "secret"}, default="url")
    if errors:
        form = {"url": url}
        return _agency_page(
            request, state, member, found, callback_form=form, errors=errors, status=422
        )
    return RedirectResponse(f"/agencies/{agency_id}?callback=1", status_code=303)
