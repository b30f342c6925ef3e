"""Running a service: background loops beside the HTTP app, and the uvicorn server."""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
from collections.abc import Callable, Iterator, Sequence

import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)


class Worker:
    """A loop run in a daemon thread: `start()` it, then `stop()` it and wait for it to finish."""

    def __init__(self, name: str, run: Callable[[], None], stop: Callable[[], None]) -> None:
        self._run = run
        self._stop = stop
        self._stopping = False
        self._thread = threading.Thread(target=self._guarded, name=name, daemon=True)

    def _guarded(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("worker stopped by an error", extra={"worker": self._thread.name})
            raise

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stopping = True
        self._stop()
        self._thread.join(timeout_s)

    @property
    def name(self) -> str:
        return self._thread.name

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def dead(self) -> bool:
        """Started and not asked to stop, yet no longer running: its loop raised or returned."""
        return self._thread.ident is not None and not self._stopping and not self.alive


@contextlib.contextmanager
def running(workers: Sequence[Worker]) -> Iterator[None]:
    """Run `workers` for the duration of the block; they are stopped however it ends.

    What startup built (modules, metadata, engines, caches) is first left out of later
    garbage collections: the cyclic collector's full passes walked that long-lived heap again
    and again under load (a quarter of the events service's CPU in the ingest bench).
    Collecting first keeps startup's garbage from being frozen with it."""
    gc.collect()
    gc.freeze()
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        for worker in workers:
            worker.stop()


def serve(app: FastAPI, *, host: str, port: int) -> None:
    """Serve `app` until SIGINT/SIGTERM; our JSON logging stays in charge (no uvicorn config)."""
    uvicorn.run(
        app, host=host, port=port, log_config=None, access_log=False, timeout_graceful_shutdown=10
    )
