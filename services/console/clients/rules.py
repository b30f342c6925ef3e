"""The rules service as the console uses it: rules, templates and the audit log."""

from __future__ import annotations

from typing import Any

from services.console.clients.base import ServiceClient


class RulesClient:
    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    def rules(self, *, actor: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._client.request("GET", "/v1/rules", actor=actor).json()[
            "items"
        ]
        return items

    def templates(self, *, actor: str) -> list[dict[str, Any]]:
        answer = self._client.request("GET", "/v1/templates", actor=actor)
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    def audit(
        self,
        *,
        actor: str,
        kind: str | None = None,
        object_id: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first; `before` pages back from a `seq`."""
        params: dict[str, Any] = {"limit": limit}
        for name, value in (("kind", kind), ("object_id", object_id), ("before", before)):
            if value is not None:
                params[name] = value
        answer = self._client.request("GET", "/v1/audit", actor=actor, params=params)
        items: list[dict[str, Any]] = answer.json()["items"]
        return items
