"""The rules service as the console uses it: rules, templates and the audit log."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

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

    # --- one rule or template, its checks, tries and versions -----------------------------

    def document(self, kind: str, object_id: str, *, actor: str) -> dict[str, Any]:
        """`kind` is "rules" or "templates": the live record (404 → NotFound)."""
        record: dict[str, Any] = self._client.request(
            "GET", f"/v1/{kind}/{quote(object_id)}", actor=actor
        ).json()
        return record

    def save(self, kind: str, object_id: str, document: dict[str, Any], *, actor: str) -> int:
        """Saves a new version (422 → ServiceError naming the fields); the version number."""
        answer = self._client.request(
            "PUT", f"/v1/{kind}/{quote(object_id)}", actor=actor, json=document
        )
        version: int = answer.json()["version"]
        return version

    def check_rule(self, rule_id: str, document: dict[str, Any], *, actor: str) -> dict[str, Any]:
        """What saving would do (`would_cancel` for a disable), without saving."""
        answer = self._client.request(
            "POST", f"/v1/rules/{quote(rule_id)}/check", actor=actor, json=document
        )
        checked: dict[str, Any] = answer.json()
        return checked

    def try_rule(
        self, rule_id: str, event: dict[str, Any], *, language: str, actor: str
    ) -> dict[str, Any]:
        """What the stored rule would do with `event` (holiday names in `language`)."""
        answer = self._client.request(
            "POST",
            f"/v1/rules/{quote(rule_id)}/test",
            actor=actor,
            json=event,
            params={"language": language},
        )
        result: dict[str, Any] = answer.json()
        return result

    def preview(
        self, template: dict[str, Any], *, actor: str, event: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """An unsaved template rendered per locale (sample event unless `event`)."""
        body: dict[str, Any] = {"template": template}
        if event is not None:
            body["event"] = event
        answer = self._client.request("POST", "/v1/templates/preview", actor=actor, json=body)
        result: dict[str, Any] = answer.json()
        return result

    def versions(self, kind: str, object_id: str, *, actor: str) -> list[dict[str, Any]]:
        answer = self._client.request("GET", f"/v1/{kind}/{quote(object_id)}/versions", actor=actor)
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    def diff(
        self, kind: str, object_id: str, older: int, newer: int | None, *, actor: str
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"from": older}
        if newer is not None:
            params["to"] = newer
        answer = self._client.request(
            "GET", f"/v1/{kind}/{quote(object_id)}/diff", actor=actor, params=params
        )
        result: dict[str, Any] = answer.json()
        return result

    def restore(self, kind: str, object_id: str, number: int, *, actor: str) -> int:
        """Makes version `number` live again as a new version; the new number."""
        answer = self._client.request(
            "POST", f"/v1/{kind}/{quote(object_id)}/versions/{number}/restore", actor=actor
        )
        version: int = answer.json()["version"]
        return version
