"""The events service as the console uses it: agencies, their keys and callback endpoints."""

from __future__ import annotations

import logging
from typing import Any

from services.console.clients.base import ServiceClient
from services.console.errors import NotFound, ServiceError

log = logging.getLogger(__name__)


class EventsClient:
    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    def agencies(self, *, actor: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._client.request(
            "GET", "/v1/agencies", actor=actor
        ).json()["agencies"]
        return items

    def agency(self, agency_id: str, *, actor: str) -> dict[str, Any]:
        """The agency (404 when there is none): its limits answer names it."""
        for agency in self.agencies(actor=actor):
            if agency["id"] == agency_id:
                return agency
        raise NotFound(agency_id)

    def create_agency(self, agency_id: str, name: str, *, actor: str) -> dict[str, Any]:
        body = {"id": agency_id, "name": name}
        created: dict[str, Any] = self._client.request(
            "POST", "/v1/agencies", actor=actor, json=body
        ).json()
        return created

    def keys(self, agency_id: str, *, actor: str) -> list[dict[str, Any]]:
        path = f"/v1/agencies/{agency_id}/keys"
        keys: list[dict[str, Any]] = self._client.request("GET", path, actor=actor).json()["keys"]
        return keys

    def create_key(self, agency_id: str, *, actor: str) -> dict[str, Any]:
        path = f"/v1/agencies/{agency_id}/keys"
        created: dict[str, Any] = self._client.request("POST", path, actor=actor).json()
        return created

    def revoke_key(self, agency_id: str, prefix: str, *, actor: str) -> None:
        self._client.request("DELETE", f"/v1/agencies/{agency_id}/keys/{prefix}", actor=actor)

    def callback(self, agency_id: str, *, actor: str) -> dict[str, Any] | None:
        """The agency's callback endpoint and its state; None when it has none."""
        try:
            answer = self._client.request("GET", f"/v1/agencies/{agency_id}/callback", actor=actor)
        except NotFound:
            return None
        callback: dict[str, Any] = answer.json()
        return callback

    def put_callback(self, agency_id: str, url: str, secret: str, *, actor: str) -> None:
        body = {"url": url, "secret": secret}
        self._client.request("PUT", f"/v1/agencies/{agency_id}/callback", actor=actor, json=body)

    def audit(self, *, actor: str, object_filter: str | None, limit: int) -> list[dict[str, Any]]:
        """The events service's audit log (agencies, keys, callbacks, limits, event types),
        newest first; `object_filter` is `<kind>/<id>` as the API takes it. A service that
        answers with an error gives an empty list."""
        params: dict[str, Any] = {"limit": limit}
        if object_filter:
            params["object"] = object_filter
        try:
            answer = self._client.request("GET", "/v1/audit", actor=actor, params=params)
        except (NotFound, ServiceError) as error:
            log.info("events audit not available", extra={"reason": type(error).__name__})
            return []
        items = answer.json().get("items", [])
        return [item for item in items if isinstance(item, dict) and {"at", "actor"} <= set(item)]
