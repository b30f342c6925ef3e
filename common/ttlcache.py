"""A small read-through cache whose entries live `ttl_s` seconds: what a service looks up on
every request (an agency's key, limits, event-type schemas) and changes rarely."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """`get(key)` answers from the cache while the entry is fresh, else calls `load(key)`
    (outside the lock: two threads may both load, and the later one's value stays) and keeps
    what it returned for `ttl_s` seconds, unless `keep(value)` says not to (a miss that must
    be asked again). Safe to share between threads; `ttl_s <= 0` caches nothing."""

    def __init__(
        self,
        load: Callable[[K], V],
        *,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
        keep: Callable[[V], bool] | None = None,
    ) -> None:
        self._load = load
        self._ttl_s = ttl_s
        self._clock = clock
        self._keep = keep
        self._entries: dict[K, tuple[V, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V:
        """The fresh cached value, or the loaded one."""
        now = self._clock()
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        value = self._load(key)
        if self._ttl_s > 0 and (self._keep is None or self._keep(value)):
            with self._lock:
                self._entries[key] = (value, now + self._ttl_s)
        return value

    def peek(self, key: K) -> V | None:
        """The value when it is cached and fresh, without loading (None otherwise)."""
        with self._lock:
            hit = self._entries.get(key)
        return hit[0] if hit is not None and hit[1] > self._clock() else None

    def invalidate(self, key: K) -> None:
        """Forget one entry: the next `get` loads it again."""
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()
