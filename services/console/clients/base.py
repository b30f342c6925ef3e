"""One small HTTP client per service: admin key, the acting staff member, errors translated."""

from __future__ import annotations

from typing import Any

import httpx

from services.console.errors import NotFound, ServiceError, ServiceUnavailable

ACTOR_HEADER = "Avisa-Actor"


class ServiceClient:
    """Calls one service's public API server-side with the admin key.

    `http` is the connection pool (an `httpx.Client` whose base URL is the service's; tests
    hand in a `TestClient` of the real app).
    """

    def __init__(self, name: str, http: httpx.Client, admin_key: str) -> None:
        self.name = name
        self._http = http
        self._auth = {"Authorization": f"Bearer {admin_key}"}

    def request(
        self,
        method: str,
        path: str,
        *,
        actor: str,
        json: Any = None,
        params: dict[str, Any] | None = None,
        expect: tuple[int, ...] = (200, 201, 204),
    ) -> httpx.Response:
        """The answer when its status is expected; 404 becomes NotFound, others ServiceError."""
        headers = {**self._auth, ACTOR_HEADER: actor}
        try:
            response = self._http.request(method, path, headers=headers, json=json, params=params)
        except httpx.TransportError as error:
            raise ServiceUnavailable(self.name) from error
        if response.status_code in expect:
            return response
        if response.status_code == 404:
            raise NotFound(path)
        if response.status_code in (502, 503, 504):
            raise ServiceUnavailable(self.name)
        try:
            problem = response.json()
        except ValueError:
            problem = {"detail": response.text[:200]}
        raise ServiceError(
            self.name, response.status_code, problem if isinstance(problem, dict) else {}
        )

    def close(self) -> None:
        self._http.close()
