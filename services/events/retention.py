"""Content retention: event payloads are purged after a while; ids, hashes and the trace stay."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from services.events import flows, repository

log = logging.getLogger(__name__)


class ContentPurger:
    """Every `interval_s`, replaces old events' payloads by their envelope (no `data`)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        retention: timedelta,
        interval_s: float,
        batch: int,
        on_purged: Callable[[int], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._retention = retention
        self._interval_s = interval_s
        self._batch = batch
        self._on_purged = on_purged
        self._clock = clock
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.purge()
            except Exception:
                log.exception("content purge failed; will try again")
            self._stop.wait(self._interval_s)

    def purge(self) -> int:
        """Purge everything past retention, in batches; returns how many events were purged."""
        total = 0
        while not self._stop.is_set():
            purged = self._purge_batch()
            total += purged
            if purged < self._batch:
                break
        if total:
            log.info("event contents purged", extra={"purged": total})
            if self._on_purged is not None:
                self._on_purged(total)
        return total

    def _purge_batch(self) -> int:
        now = self._clock()
        with self._sessions.begin() as session:
            events = repository.events_to_purge(
                session=session, before=now - self._retention, limit=self._batch
            )
            for event in events:
                event.payload = flows.envelope_only(event.payload)
                event.purged_at = now
        return len(events)
