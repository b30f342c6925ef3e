"""Content retention: a periodic worker that strips the content of rows kept longer than the
retention period, a batch per transaction. Each service says which rows and how."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from common.runtime import Loop

log = logging.getLogger(__name__)


class ContentPurger(Loop):
    """Every `interval_s`, purges what is past `retention`, `batch` rows a transaction, until
    a batch comes back short; run in a `Worker`. Subclasses implement `purge_batch` and name
    what they purge in `noun` (for the logs)."""

    noun = "row"

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
        super().__init__(interval_s=interval_s)
        self._sessions = sessions
        self._retention = retention
        self._batch = batch
        self._on_purged = on_purged
        self._clock = clock

    def round(self) -> bool:
        """`purge()` everything due, then wait `interval_s` (a failed round too)."""
        self.purge()
        return False

    def round_failed(self, error: Exception) -> None:
        log.exception("content purge failed; will try again", extra={"what": self.noun})

    def purge(self) -> int:
        """Purge everything past retention, in batches; returns how many rows were purged."""
        total = 0
        while not self.stopping:
            now = self._clock()
            with self._sessions.begin() as session:
                purged = self.purge_batch(
                    session, before=now - self._retention, now=now, limit=self._batch
                )
            total += purged
            if purged < self._batch:
                break
        if total:
            log.info("contents purged", extra={"what": self.noun, "purged": total})
            if self._on_purged is not None:
                self._on_purged(total)
        return total

    def purge_batch(self, session: Session, *, before: datetime, now: datetime, limit: int) -> int:
        """Purge at most `limit` rows whose content dates from before `before`; how many."""
        raise NotImplementedError
