"""Versions of rules and templates: every version, the difference between any two (the API's
diff), and restoring one (a new version) after a confirmation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from services.console.errors import NotFound, ServiceError
from services.console.pages.audit import who
from services.console.pages.rules import visible_rule
from services.console.roles import EVERYONE, MANAGERS, Access
from services.console.sessions import Member
from services.console.web import GUARDS, Console, Signed, State

router = APIRouter(dependencies=GUARDS)

KINDS = ("rules", "templates")


def _paths(kind: str) -> dict[str, str]:
    base = f"/{kind}/{{object_id}}"
    return {
        "versions": f"{base}/versions",
        "diff": f"{base}/diff",
        "restore": f"{base}/versions/{{number}}/restore",
    }


ACCESS: dict[tuple[str, str], Access] = {}
for _kind in KINDS:
    _p = _paths(_kind)
    ACCESS[("GET", _p["versions"])] = EVERYONE
    ACCESS[("GET", _p["diff"])] = EVERYONE
    ACCESS[("GET", _p["restore"])] = MANAGERS
    ACCESS[("POST", _p["restore"])] = MANAGERS


def _check(state: Console, member: Member, kind: str, object_id: str) -> dict[str, Any]:
    """The live record, if this member may see it (editors: their agency's rules only)."""
    if kind == "rules":
        return visible_rule(state, member, object_id)
    return state.services.rules.document(kind, object_id, actor=member.email)


def _rows(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**v, "changed_by": who(v.get("changed_by", ""))}
        for v in sorted(versions, key=lambda v: v["version"], reverse=True)
    ]


def _versions_page(kind: str) -> Callable[..., Response]:
    def versions(request: Request, object_id: str, state: State, member: Signed) -> Response:
        record = _check(state, member, kind, object_id)
        rows = _rows(state.services.rules.versions(kind, object_id, actor=member.email))
        return state.pages.render(
            request,
            "versions/list.html",
            kind=kind,
            record=record,
            versions=rows,
            may_restore=not member.read_only,
            notice=_notice(request, state),
        )

    return versions


def _notice(request: Request, state: Console) -> str | None:
    if restored := request.query_params.get("restored"):
        text = state.pages.gettext(request, "Restored as version {version}")
        return text.format(version=restored[:10])
    return None


def _diff_page(kind: str) -> Callable[..., Response]:
    def diff(
        request: Request,
        object_id: str,
        state: State,
        member: Signed,
        *,
        older: Annotated[int, Query(alias="from", ge=1, le=2_147_483_647)] = 1,
        newer: Annotated[int | None, Query(alias="to", ge=1, le=2_147_483_647)] = None,
    ) -> Response:
        record = _check(state, member, kind, object_id)
        found = state.services.rules.diff(kind, object_id, older, newer, actor=member.email)
        versions = _rows(state.services.rules.versions(kind, object_id, actor=member.email))
        return state.pages.render(
            request,
            "versions/diff.html",
            kind=kind,
            record=record,
            diff=found,
            versions=versions,
            lines=diff_lines(found.get("unified", "")),
        )

    return diff


def diff_lines(unified: str) -> list[tuple[str, str]]:
    """Each line of a unified diff with its kind: added, removed or context."""
    lines = []
    for line in unified.splitlines():
        if line.startswith("+") and not line.startswith("+++"):
            lines.append(("added", line))
        elif line.startswith("-") and not line.startswith("---"):
            lines.append(("removed", line))
        else:
            lines.append(("context", line))
    return lines


def _version(
    state: Console, member: Member, kind: str, object_id: str, number: int
) -> dict[str, Any]:
    for version in state.services.rules.versions(kind, object_id, actor=member.email):
        if version["version"] == number:
            return version
    raise NotFound(f"{object_id}/{number}")


def _confirm_page(kind: str) -> Callable[..., Response]:
    def confirm(
        request: Request, object_id: str, number: int, state: State, member: Signed
    ) -> Response:
        record = _check(state, member, kind, object_id)
        version = _version(state, member, kind, object_id, number)
        return state.pages.render(
            request,
            "versions/restore.html",
            kind=kind,
            record=record,
            version={**version, "changed_by": who(version.get("changed_by", ""))},
            error=None,
        )

    return confirm


def _restore_action(kind: str) -> Callable[..., Response]:
    def restore(
        request: Request, object_id: str, number: int, state: State, member: Signed
    ) -> Response:
        record = _check(state, member, kind, object_id)
        version = _version(state, member, kind, object_id, number)
        try:
            made = state.services.rules.restore(kind, object_id, number, actor=member.email)
        except ServiceError as error:
            if error.status not in (409, 422):
                raise
            problems = error.field_errors()
            return state.pages.render(
                request,
                "versions/restore.html",
                status=422,
                kind=kind,
                record=record,
                version={**version, "changed_by": who(version.get("changed_by", ""))},
                error="; ".join(f"{k}: {v}" if k else v for k, v in problems.items()),
            )
        return RedirectResponse(f"/{kind}/{object_id}/versions?restored={made}", status_code=303)

    return restore


for _kind in KINDS:
    _p = _paths(_kind)
    router.add_api_route(_p["versions"], _versions_page(_kind), methods=["GET"])
    router.add_api_route(_p["diff"], _diff_page(_kind), methods=["GET"])
    router.add_api_route(_p["restore"], _confirm_page(_kind), methods=["GET"])
    router.add_api_route(_p["restore"], _restore_action(_kind), methods=["POST"])
