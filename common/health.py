"""`/healthz` (alive) and `/readyz` (every dependency reachable and every background worker
running, else 503)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse


class Supervised(Protocol):
    """A background thread /readyz watches (`common.runtime.Worker`, a writer thread...)."""

    @property
    def name(self) -> str: ...

    @property
    def dead(self) -> bool:
        """Started and not asked to stop, yet no longer running."""
        ...


def _workers(request: Request) -> dict[str, bool]:
    """Each of the app's workers (`app.state.workers`, set by its lifespan) and whether it
    is still running; a dead consumer or scheduler leaves a process that answers HTTP but
    does nothing."""
    workers: Iterable[Supervised] = getattr(request.app.state, "workers", ())
    return {worker.name: not worker.dead for worker in workers}


def health_router(checks: Mapping[str, Callable[[], bool]]) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    def readyz(request: Request) -> JSONResponse:
        results = {name: check() for name, check in checks.items()}
        workers = _workers(request)
        ready = all(results.values()) and all(workers.values())
        body = {
            "status": "ready" if ready else "unavailable",
            "checks": {name: "ok" if ok else "down" for name, ok in results.items()},
            "workers": {name: "ok" if ok else "down" for name, ok in workers.items()},
        }
        return JSONResponse(body, status_code=200 if ready else 503)

    return router
