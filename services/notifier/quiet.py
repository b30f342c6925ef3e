"""Quiet hours and local days, free of I/O: when may a message go, in the citizen's own zone.

Every function takes `now` (timezone-aware) and a `ZoneInfo`, so tests can throw DST days,
windows across midnight and odd zones at them without a clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_MAX_HOPS = 4  # a DST gap can swallow the allowed slot once; a few hops always reach one


def parse_hhmm(value: str) -> time:
    """`"21:00"` → `time(21, 0)`; ValueError for anything that is not a 24-hour HH:MM."""
    match = _HHMM.match(value.strip())
    if match is None:
        raise ValueError(f"'{value}' is not a time like 21:00 (24-hour HH:MM)")
    return time(int(match[1]), int(match[2]))


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window of local wall-clock time, `[start, end)`; it crosses midnight when
    `start > end`, and is empty when `start == end`."""

    start: time
    end: time

    def contains(self, wall: time) -> bool:
        """True when the local wall-clock time `wall` falls inside the window."""
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end


def parse_window(value: str) -> QuietHours | None:
    """`"21:00-08:00"` → the window; `""` or `"none"` → no default quiet hours."""
    text = value.strip()
    if text.lower() in ("", "none", "off"):
        return None
    start, separator, end = text.partition("-")
    if not separator:
        raise ValueError(f"'{value}' is not a window like 21:00-08:00")
    return QuietHours(parse_hhmm(start), parse_hhmm(end))


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def first_instant_at(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The first UTC instant whose local wall-clock reading in `zone` is at or after
    `day` + `wall`. Usually that wall time itself; inside a DST gap (a wall time that does not
    exist) it is the instant of the transition."""
    naive = datetime.combine(day, wall)
    early = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall(early, zone) == naive:  # exists (for an ambiguous time, fold=0 is the first one)
        return early
    # In a gap, fold=1 maps to an instant before the transition and fold=0 to one after it:
    # bisect whole seconds between them for the first instant that reads >= `naive`.
    low = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = early
    if low > high:
        low, high = high, low
    while (high - low) > timedelta(seconds=1):
        middle = low + timedelta(seconds=((high - low).total_seconds() // 2))
        if _wall(middle, zone) >= naive:
            high = middle
        else:
            low = middle
    return high


def next_allowed(now: datetime, zone: ZoneInfo, window: QuietHours | None) -> datetime:
    """`now` when it is outside the quiet window in `zone`, else the first instant after it
    that is (in UTC). Handles windows across midnight and DST days."""
    instant = now.astimezone(UTC)
    if window is None or window.start == window.end:
        return instant
    for _ in range(_MAX_HOPS):
        local = _wall(instant, zone)
        if not window.contains(local.time()):
            return instant
        day = local.date()
        if window.start > window.end and local.time() >= window.start:
            day += timedelta(days=1)  # the window began this evening and ends tomorrow
        candidate = first_instant_at(day, window.end, zone)
        instant = candidate if candidate > instant else instant + timedelta(minutes=1)
    return instant


def next_local_day(now: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant the citizen's next local day begins (midnight, or the DST-shifted one)."""
    tomorrow = _wall(now, zone).date() + timedelta(days=1)
    return first_instant_at(tomorrow, time(0, 0), zone)


def local_day_start(now: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant the citizen's current local day began."""
    return first_instant_at(_wall(now, zone).date(), time(0, 0), zone)
