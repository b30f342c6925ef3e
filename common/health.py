"""`/healthz` (alive) and `/readyz` (every dependency reachable, else 503)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fastapi import APIRouter
from fastapi.responses import JSONResponse


def health_router(checks: Mapping[str, Callable[[], bool]]) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    def readyz() -> JSONResponse:
        results = {name: check() for name, check in checks.items()}
        ready = all(results.values())
        body = {
            "status": "ready" if ready else "unavailable",
            "checks": {name: "ok" if ok else "down" for name, ok in results.items()},
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    return router
