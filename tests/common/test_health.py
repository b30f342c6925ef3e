"""/readyz names a background worker that died (its loop raised or returned), and a worker
stopped on purpose at shutdown is not reported as dead."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.testclient import TestClient

from common.health import health_router
from common.runtime import Worker, running


def eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


class Loop:
    """A loop that runs until stopped, or raises when told to crash."""

    def __init__(self) -> None:
        self.crash = threading.Event()
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.wait(0.01):
            if self.crash.is_set():
                raise RuntimeError("boom")

    def stop(self) -> None:
        self._stop.set()


def make_app(loops: dict[str, Loop]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        workers = [Worker(name, loop.run, loop.stop) for name, loop in loops.items()]
        app.state.workers = workers
        with running(workers):
            yield

    app = FastAPI(lifespan=lifespan)
    app.include_router(health_router({"database": lambda: True}))
    return app


def test_readyz_is_ready_while_every_worker_runs():
    with TestClient(make_app({"consumer": Loop(), "scheduler": Loop()})) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "ready",
            "checks": {"database": "ok"},
            "workers": {"consumer": "ok", "scheduler": "ok"},
        }


def test_readyz_answers_503_naming_the_worker_that_died():
    consumer, scheduler = Loop(), Loop()
    with TestClient(make_app({"consumer": consumer, "scheduler": scheduler})) as client:
        scheduler.crash.set()
        eventually(lambda: client.get("/readyz").status_code == 503)
        body = client.get("/readyz").json()
        assert body["status"] == "unavailable"
        assert body["workers"] == {"consumer": "ok", "scheduler": "down"}
        assert body["checks"] == {"database": "ok"}


def test_a_worker_stopped_on_purpose_is_not_dead():
    loop = Loop()
    worker = Worker("w", loop.run, loop.stop)
    assert not worker.dead  # not started yet
    worker.start()
    assert not worker.dead
    worker.stop()
    assert not worker.alive and not worker.dead


def test_a_worker_whose_loop_returns_early_is_dead():
    worker = Worker("once", lambda: None, lambda: None)
    worker.start()
    eventually(lambda: not worker.alive)
    assert worker.dead
