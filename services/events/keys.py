"""Agency keys: the authenticator's lookup (briefly cached), their records on keys.v1 for the
other services, and the development demo agency."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from common.auth import KEY_PREFIX, hash_key
from common.kafka import OutgoingMessage, Producer
from common.keyfeed import RecordPublisher
from common.settings import DEV_AGENCY_ID, DEV_AGENCY_KEY
from common.ttlcache import TtlCache
from schemas.keys import KeyRecord
from services.events import repository
from services.events.models import AgencyKey

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
        # A miss is not kept: a key created meanwhile is found on its first use.
        self._cache: TtlCache[str, str | None] = TtlCache(
            self._load, ttl_s=ttl_s, clock=clock, keep=lambda agency: agency is not None
        )
        self._listeners: list[Callable[[], None]] = []

    def listen(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever keys change through this process (a revocation)."""
        self._listeners.append(callback)

    def __call__(self, key_hash: str) -> str | None:
        return self._cache.get(key_hash)

    def cached(self, key_hash: str) -> str | None:
        """The agency of a key known without asking the database (None: not cached)."""
        return self._cache.peek(key_hash)

    def invalidate(self) -> None:
        self._cache.clear()
        for callback in self._listeners:
            callback()

    def _load(self, key_hash: str) -> str | None:
        with self._sessions() as session:
            return repository.agency_for_key(session=session, key_hash=key_hash)


def key_records(sessions: sessionmaker[Session]) -> dict[str, KeyRecord]:
    """Every agency key as keys.v1 carries it, by hash (the table is small: agencies' keys)."""
    columns = (AgencyKey.agency_id, AgencyKey.prefix, AgencyKey.key_hash)
    with sessions() as session:
        rows = session.execute(select(*columns, AgencyKey.created_at, AgencyKey.revoked_at))
        return {
            key_hash: KeyRecord(
                agency_id=agency_id,
                prefix=prefix,
                key_hash=key_hash,
                revoked=revoked_at is not None,
                at=revoked_at or created_at,
            )
            for agency_id, prefix, key_hash, created_at, revoked_at in rows
        }


class KeyPublisher(RecordPublisher):
    """Publishes agency key records (hash, never the key) to keys.v1 so that other services
    verify agency keys without reading our tables: every key at start, then each new or
    revoked key, found by reading the keys table every `interval_s` or at once when woken
    (`KeyLookup.listen`). Run in a `Worker`; a failed round (broker or database down) is
    tried again, and nothing is forgotten until the broker acknowledged it."""

    noun = "key"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        producer: Producer,
        topic: str,
        *,
        bootstrap_servers: Sequence[str],
        interval_s: float = 1.0,
    ) -> None:
        super().__init__(
            producer, topic, bootstrap_servers=bootstrap_servers, interval_s=interval_s
        )
        self._sessions = sessions
        self._published: dict[str, bool] = {}  # key hash -> revoked, as acknowledged

    def publish_changes(self) -> int:
        """Publish the records that changed since the last acknowledged round; how many."""
        records = key_records(self._sessions)
        changed = [r for h, r in records.items() if self._published.get(h) != r.revoked]
        if changed:
            self._producer.publish(
                OutgoingMessage(
                    topic=self._topic, key=r.key_hash, value=r.model_dump_json().encode()
                )
                for r in changed
            )
            self._published.update((r.key_hash, r.revoked) for r in changed)
            log.info("key records published", extra={"records": len(changed)})
        return len(changed)


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
