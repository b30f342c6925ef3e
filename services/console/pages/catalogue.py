"""Placeholder lists of rules and templates (from `GET /v1/rules` and `GET /v1/templates`).

The rule and template screens replace these with their own modules.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.console.pages.audit import who
from services.console.roles import EVERYONE, Table
from services.console.sessions import Member
from services.console.web import GUARDS, Signed, State

router = APIRouter(dependencies=GUARDS)

ACCESS: Table = {
    ("GET", "/rules"): EVERYONE,
    ("GET", "/templates"): EVERYONE,
}


def visible_rules(rules: list[dict[str, Any]], member: Member) -> list[dict[str, Any]]:
    """Editors see only the rules whose `source` is their agency."""
    if member.role != "editor":
        return rules
    return [r for r in rules if r["document"].get("source") == member.agency_id]


def _rule_row(record: dict[str, Any]) -> dict[str, Any]:
    document = record["document"]
    return {
        "id": record["id"],
        "description": document.get("description", ""),
        "on": document.get("on", ""),
        "enabled": document.get("enabled", True),
        "channels": document.get("channels", []),
        "updated_at": record.get("updated_at"),
        "updated_by": who(record.get("updated_by", "")),
    }


@router.get("/rules")
def rules(request: Request, state: State, member: Signed) -> Response:
    records = visible_rules(state.services.rules.rules(actor=member.email), member)
    rows = sorted((_rule_row(r) for r in records), key=lambda row: row["id"])
    return state.pages.render(request, "rules_list.html", rules=rows)


@router.get("/templates")
def templates(request: Request, state: State, member: Signed) -> Response:
    records = state.services.rules.templates(actor=member.email)
    rows = [
        {
            "id": r["id"],
            "locales": sorted(r["document"].get("locales", {})),
            "updated_at": r.get("updated_at"),
        }
        for r in sorted(records, key=lambda r: r["id"])
    ]
    return state.pages.render(request, "templates_list.html", templates=rows)
