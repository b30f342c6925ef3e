"""The notifier as the console uses it: a citizen's preferences (for the follow-up views)."""

from __future__ import annotations

from typing import Any

from services.console.clients.base import ServiceClient


class NotifierClient:
    def __init__(self, client: ServiceClient) -> None:
        self._client = client

    def preferences(self, citizen_id: str, *, actor: str) -> dict[str, Any]:
        """The citizen's channels, opt-outs, quiet hours and contact details (404: none)."""
        answer = self._client.request("GET", f"/v1/citizens/{citizen_id}/preferences", actor=actor)
        preferences: dict[str, Any] = answer.json()
        return preferences
