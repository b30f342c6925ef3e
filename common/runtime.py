"""Running a service: background loops beside the HTTP app, and the uvicorn server."""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
from collections.abc import Callable, Iterator, Sequence

import uvicorn
from fastapi import FastAPI

from common.http_timeouts import HttpTimeouts, guarded_protocol

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


class Loop:
    """A background loop run in a `Worker`: `run()` repeats `round()` until `stop()`.

    A busy round (`round()` returned True) is followed at once by the next. After an idle round
    the loop waits `idle_wait()` seconds; after a failed one (it raised, and `round_failed`
    logged it) `failed_wait()` seconds. `poke()` and `stop()` cut a wait short. Subclasses
    implement `round` and name what failed in `round_failed`."""

    def __init__(self, *, interval_s: float) -> None:
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._wake = threading.Event()

    @property
    def stopping(self) -> bool:
        """Whether `stop()` was called: a long round checks it between its steps."""
        return self._stop.is_set()

    def stop(self) -> None:
        """End `run()` once the current round is over; a wait ends at once."""
        self._stop.set()
        self._wake.set()

    def poke(self) -> None:
        """Start the next round now rather than after the current wait (or, if a round is
        running, as soon as it ends)."""
        self._wake.set()

    def run(self) -> None:
        """Block until `stop()`; a failed round is logged and tried again after a wait."""
        while not self._stop.is_set():
            try:
                if self.round():
                    continue
                delay = self.idle_wait()
            except Exception as error:
                self.round_failed(error)
                delay = self.failed_wait()
            self._wake.wait(delay)
            self._wake.clear()

    def round(self) -> bool:
        """Do one round of work; True to start the next at once (more may be waiting)."""
        raise NotImplementedError

    def idle_wait(self) -> float:
        """Seconds to wait after a round that returned False: `interval_s` by default."""
        return self._interval_s

    def failed_wait(self) -> float:
        """Seconds to wait after a round that raised: `interval_s` by default."""
        return self._interval_s

    def round_failed(self, error: Exception) -> None:
        """Log a failed round (called in the `except` block, so `log.exception` has the
        traceback); subclasses say what failed, in their own logger."""
        log.exception("loop round failed; will retry", extra={"loop": type(self).__name__})


def freeze_startup_heap() -> None:
    """Leave what startup built (modules, metadata, engines, caches) out of later garbage
    collections: the cyclic collector's full passes walked that long-lived heap again and
    again under load (a quarter of the events service's CPU in the ingest bench). Collecting
    first keeps startup's garbage from being frozen with it. Each service's lifespan calls it
    once everything is built, just before its workers start."""
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def running(workers: Sequence[Worker]) -> Iterator[None]:
    """Run `workers` for the duration of the block; they are stopped however it ends."""
    for worker in workers:
        worker.start()
    try:
        yield
    finally:
        for worker in workers:
            worker.stop()


def serve(app: FastAPI, *, host: str, port: int, timeouts: HttpTimeouts | None = None) -> None:
    """Serve `app` until SIGINT/SIGTERM; our JSON logging stays in charge (no uvicorn config).

    Clients must send a request's headers and body within `timeouts` (408 and closed else)."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        http=guarded_protocol(timeouts or HttpTimeouts()),
    )
