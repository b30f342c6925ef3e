"""Agency keys: the authenticator's lookup (briefly cached) and the development demo agency."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from common.auth import KEY_PREFIX, hash_key
from common.settings import DEV_AGENCY_ID, DEV_AGENCY_KEY
from services.events import repository

log = logging.getLogger(__name__)

DEV_AGENCY_NAME = "Demo agency"


def key_prefix(key: str) -> str:
    """The part of a key that identifies it in listings: 8 characters after `avk_`."""
    return key.removeprefix(KEY_PREFIX)[:8]


class KeyLookup:
    """Maps a key hash to the agency of a live key; hits are cached for `ttl_s` seconds.

    Revocations made through this process clear the cache at once; other replicas see them
    within `ttl_s`.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def __call__(self, key_hash: str) -> str | None:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key_hash)
        if hit is not None and hit[1] > now:
            return hit[0]
        with self._sessions() as session:
            agency = repository.agency_for_key(session=session, key_hash=key_hash)
        if agency is not None and self._ttl_s > 0:
            with self._lock:
                self._cache[key_hash] = (agency, now + self._ttl_s)
        return agency

    def cached(self, key_hash: str) -> str | None:
        """The agency of a key known without asking the database (None: not cached)."""
        with self._lock:
            hit = self._cache.get(key_hash)
        return hit[0] if hit is not None and hit[1] > self._clock() else None

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()


def ensure_dev_agency(sessions: sessionmaker[Session]) -> None:
    """Create the demo agency and its fixed key if missing (development mode only)."""
    now = datetime.now(UTC)
    key_hash = hash_key(DEV_AGENCY_KEY)
    try:
        with sessions.begin() as session:
            if repository.get_agency(session=session, agency_id=DEV_AGENCY_ID) is None:
                repository.add_agency(
                    session=session, agency_id=DEV_AGENCY_ID, name=DEV_AGENCY_NAME, now=now
                )
                session.flush()
            if not repository.key_exists(session=session, key_hash=key_hash):
                repository.add_key(
                    session=session,
                    agency_id=DEV_AGENCY_ID,
                    key_hash=key_hash,
                    prefix=key_prefix(DEV_AGENCY_KEY),
                    now=now,
                )
    except IntegrityError:
        log.info("demo agency created concurrently by another process")
    else:
        log.info("demo agency ready", extra={"agency_id": DEV_AGENCY_ID})
