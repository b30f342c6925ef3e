"""Rate limits: a token bucket per key (in this process) and a daily cap per agency (database).

The token buckets live in memory, so with N replicas behind a load balancer a key may make up
to N times its rate; the daily cap is counted in the database and holds across replicas.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from common.problems import Problem
from common.ttlcache import TtlCache
from services.events import limit_store


@dataclass(slots=True)
class TokenBucket:
    """`capacity` tokens, refilled at `per_minute / 60` a second; one request takes one."""

    per_minute: int
    tokens: float
    updated: float

    @property
    def capacity(self) -> float:
        return float(self.per_minute)

    def take(self, now: float) -> float:
        """0 when a token was taken; else the seconds until one will be available."""
        rate = self.per_minute / 60.0
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / rate

    def retune(self, per_minute: int) -> None:
        """Apply a new rate at once, keeping what the key has already used."""
        self.per_minute = per_minute
        self.tokens = min(self.tokens, self.capacity)


class RateLimiter:
    """Token buckets by key hash; thread-safe. Keys idle for long are forgotten."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000):
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def wait_s(self, key: str, per_minute: int) -> float:
        """0 when the request may proceed; else how long the key must wait."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._max_keys:
                    self._buckets.clear()  # full buckets are what a forgotten key gets anyway
                bucket = self._buckets[key] = TokenBucket(per_minute, float(per_minute), now)
            elif bucket.per_minute != per_minute:
                bucket.retune(per_minute)
            return bucket.take(now)


def too_many_requests(wait_s: float, per_minute: int) -> Problem:
    retry = max(1, math.ceil(wait_s))
    return Problem(
        429,
        "Too many requests",
        f"this key may make {per_minute} requests a minute; retry in {retry} s",
        kind="rate-limited",
        headers={"Retry-After": str(retry)},
    )


@dataclass(frozen=True, slots=True)
class Limits:
    requests_per_minute: int
    daily_events: int


class LimitsLookup:
    """Each agency's limits (its own or the defaults), cached for `ttl_s` seconds."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        defaults: Limits,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self.defaults = defaults
        self._cache: TtlCache[str, Limits] = TtlCache(self._load, ttl_s=ttl_s, clock=clock)

    def __call__(self, agency_id: str) -> Limits:
        return self._cache.get(agency_id)

    def cached(self, agency_id: str) -> Limits | None:
        """The agency's limits when known without asking the database (None: not cached)."""
        return self._cache.peek(agency_id)

    def invalidate(self, agency_id: str) -> None:
        self._cache.invalidate(agency_id)

    def _load(self, agency_id: str) -> Limits:
        with self._sessions() as session:
            row = limit_store.get(session=session, agency_id=agency_id)
        return Limits(
            requests_per_minute=(row and row.requests_per_minute)
            or self.defaults.requests_per_minute,
            daily_events=(row and row.daily_events) or self.defaults.daily_events,
        )


def utc_day(now: datetime) -> str:
    return now.astimezone(UTC).date().isoformat()


def seconds_to_midnight(now: datetime) -> int:
    now = now.astimezone(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return max(1, math.ceil((midnight - now).total_seconds()))


class DailyCapReached(Problem):
    """429: accepting the request's new events would take the agency over its daily cap."""

    def __init__(self, agency_id: str, cap: int, now: datetime) -> None:
        super().__init__(
            429,
            "Daily cap reached",
            f"agency '{agency_id}' may have {cap} events accepted a day (UTC); "
            "this request would go over it",
            kind="daily-cap",
            headers={"Retry-After": str(seconds_to_midnight(now))},
        )


class DailyCap:
    """Counts new events against each agency's daily cap, inside the caller's transaction.

    The count is taken in the same transaction that records the events as pending, so an
    event is counted exactly when it is claimed, across replicas.
    """

    def __init__(self, limits: LimitsLookup) -> None:
        self._limits = limits

    def reserve_each(
        self, *, session: Session, requests: Sequence[tuple[Sequence[str], datetime]]
    ) -> list[DailyCapReached | None]:
        """Count several requests' events (their agencies, their receipt time), each request
        all-or-nothing: None for a request counted, DailyCapReached for one left out.

        One update per agency and day when the whole group fits, request by request else.
        """
        days = [utc_day(now) for _, now in requests]  # once a request, not once an event
        whole: Counter[tuple[str, str]] = Counter()
        for (agencies, _), day in zip(requests, days, strict=True):
            for agency_id in agencies:
                whole[agency_id, day] += 1
        if not requests or self._reserve_all(session, whole, requests[0][1]) is None:
            return [None] * len(requests)
        return [
            self._reserve_all(session, Counter((a, day) for a in agencies), now)
            for (agencies, now), day in zip(requests, days, strict=True)
        ]

    def _reserve_all(
        self, session: Session, counts: Counter[tuple[str, str]], now: datetime
    ) -> DailyCapReached | None:
        """Reserve every (agency, day) count, or none of them (what was taken is given back)."""
        taken: list[tuple[str, str, int]] = []
        for (agency_id, day), count in sorted(counts.items()):
            cap = self._limits(agency_id).daily_events
            if not limit_store.reserve(
                session=session, agency_id=agency_id, day=day, count=count, cap=cap
            ):
                for taken_agency, taken_day, taken_count in taken:
                    limit_store.release(
                        session=session, agency_id=taken_agency, day=taken_day, count=taken_count
                    )
                return DailyCapReached(agency_id, cap, now)
            taken.append((agency_id, day, count))
        return None

    def release(self, *, session: Session, agencies: Iterable[str], now: datetime) -> None:
        """Give back what `reserve_each` counted for events that were not accepted after all."""
        day = utc_day(now)
        for agency_id, count in Counter(agencies).items():
            limit_store.release(session=session, agency_id=agency_id, day=day, count=count)
