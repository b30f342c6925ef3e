"""Reminder times: deadlines, signed offsets, local times, DST and business days (pure).

How a reminder's instant is computed from a deadline and one offset:

1. The deadline in the citizen's wall-clock time: a date is that day at `at` (midnight when
   there is no `at`); a datetime is converted to the citizen's zone.
2. The offset's *nominal* part (years, months, weeks, days) moves the wall-clock date, keeping
   the time of day; months and years keep the day of the month where they can (31 Jan - P1M
   is 31 Dec, 31 Mar - P1M is 28/29 Feb).
3. `at`, when given, replaces the time of day (for datetime deadlines too).
4. The wall-clock time becomes an instant in the zone. A time that does not exist (the hour
   skipped when clocks go forward) moves forward by the gap (02:30 → 03:30 in Madrid); a time
   that happens twice (clocks go back) is its first occurrence. Both follow from `fold=0`.
5. The offset's *exact* part (hours, minutes, seconds) is added as elapsed time.
6. With a business calendar, a reminder landing on a weekend or public holiday (in the
   citizen's zone) moves to the previous business day, same wall-clock time.

Everything is returned in UTC. `now` is a parameter so tests can throw any day at it.
"""

from __future__ import annotations

import calendar as months
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from holidays import HolidayBase

from schemas.durations import Duration, parse_duration

_SEARCH_LIMIT_DAYS = 366


class CalendarUnknown(ValueError):
    """A calendar code the `holidays` package does not know."""


def business_calendar(code: str) -> HolidayBase:
    """The public holidays of a country, or of one subdivision after a dash ("ES", "ES-MD")."""
    return _calendar(code.strip().upper())


@lru_cache(maxsize=64)
def _calendar(code: str) -> HolidayBase:
    country, _, subdivision = code.partition("-")
    try:
        return holidays.country_holidays(country, subdiv=subdivision or None)
    except NotImplementedError as error:
        raise CalendarUnknown(str(error)) from None


def holiday_name(code: str, day: date, language: str) -> str | None:
    """The name of the public holiday on `day` in `language` ("es", "en"; the closest the
    `holidays` package has, such as en_US, else its own language), or None. Explicit, because
    without a language the package names holidays after the process's locale settings."""
    name = _named_calendar(code.strip().upper(), language.replace("-", "_")).get(day)
    return str(name) if name else None


@lru_cache(maxsize=64)
def _named_calendar(code: str, language: str) -> HolidayBase:
    base = _calendar(code)
    supported = base.supported_languages
    chosen = next(
        (tag for tag in supported if tag == language),
        next(
            (tag for tag in supported if tag.split("_")[0] == language.split("_", maxsplit=1)[0]),
            base.default_language,
        ),
    )
    country, _, subdivision = code.partition("-")
    return holidays.country_holidays(country, subdiv=subdivision or None, language=chosen)


def check_calendar(code: str) -> str | None:
    """Why `code` is not a usable calendar, or None when it is."""
    try:
        business_calendar(code)
    except CalendarUnknown as error:
        return f"'{code}' is not a known calendar ({error}); write it like ES or ES-MD"
    return None


def is_business_day(day: date, calendar: HolidayBase) -> bool:
    return day.weekday() < 5 and day not in calendar


@dataclass(frozen=True, slots=True)
class Move:
    """A reminder moved back one day, off `from_day` to `to_day`: a weekend, or a public
    holiday (`holiday` names it, as the `holidays` package does)."""

    from_day: date
    to_day: date
    reason: str
    holiday: str | None = None


def business_moves(day: date, calendar: HolidayBase) -> list[Move]:
    """The moves from `day` back to the business day `previous_business_day` picks, one per
    day left behind, each with its reason; [] when `day` is a business day."""
    moves = []
    target = previous_business_day(day, calendar)
    while day > target:
        name = calendar.get(day) if day.weekday() < 5 else None
        reason = "holiday" if name else "weekend"
        moves.append(Move(day, day - timedelta(days=1), reason, str(name) if name else None))
        day -= timedelta(days=1)
    return moves


def previous_business_day(day: date, calendar: HolidayBase) -> date:
    """`day` itself when it is a business day, else the closest business day before it."""
    for back in range(_SEARCH_LIMIT_DAYS):
        candidate = day - timedelta(days=back)
        if is_business_day(candidate, calendar):
            return candidate
    return day  # a calendar with a whole year of holidays: keep the day rather than loop


def shift_nominal(moment: datetime, duration: Duration) -> datetime:
    """`moment` (wall-clock) moved by the years, months, weeks and days of `duration`."""
    total_months = duration.sign * (duration.years * 12 + duration.months)
    if total_months:
        index = moment.year * 12 + moment.month - 1 + total_months
        year, month0 = divmod(index, 12)
        day = min(moment.day, months.monthrange(year, month0 + 1)[1])
        moment = moment.replace(year=year, month=month0 + 1, day=day)
    return moment + duration.sign * timedelta(weeks=duration.weeks, days=duration.days)


def exact_part(duration: Duration) -> timedelta:
    delta = timedelta(hours=duration.hours, minutes=duration.minutes, seconds=duration.seconds)
    return duration.sign * delta


def localize(wall: datetime, zone: ZoneInfo) -> datetime:
    """A naive wall-clock time in `zone` as a UTC instant (gaps move forward, folds take the
    first occurrence)."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def wall_clock(deadline: date | datetime, zone: ZoneInfo, at: time | None) -> datetime:
    """The deadline as a naive wall-clock time in `zone`."""
    if isinstance(deadline, datetime):
        aware = deadline if deadline.tzinfo else deadline.replace(tzinfo=zone)
        return aware.astimezone(zone).replace(tzinfo=None)
    return datetime.combine(deadline, at or time(0))


def reminder_time(
    deadline: date | datetime,
    offset: Duration,
    *,
    at: time | None,
    zone: ZoneInfo,
    calendar: HolidayBase | None,
) -> datetime:
    """When one reminder is due, in UTC (see the module docstring for the steps)."""
    wall = shift_nominal(wall_clock(deadline, zone, at), offset)
    if at is not None:
        wall = datetime.combine(wall.date(), at)
    due = localize(wall, zone) + exact_part(offset)
    if calendar is None:
        return due
    local = due.astimezone(zone)
    business = previous_business_day(local.date(), calendar)
    if business == local.date():
        return due
    return localize(datetime.combine(business, local.time().replace(tzinfo=None)), zone)


def reminder_times(
    deadline: date | datetime,
    offsets: Sequence[Duration],
    *,
    at: time | None,
    zone: ZoneInfo,
    calendar: HolidayBase | None,
    now: datetime,
) -> list[datetime]:
    """The UTC times of the reminders still ahead of `now`, in offset order; past ones are
    skipped (never sent late)."""
    times = [
        reminder_time(deadline, offset, at=at, zone=zone, calendar=calendar) for offset in offsets
    ]
    return [due for due in times if due > now]


def deadline_end(deadline: date | datetime, zone: ZoneInfo) -> datetime:
    """The instant a deadline passes, in UTC: a date lasts until the end of that day in the
    citizen's zone (the next day's first instant)."""
    if isinstance(deadline, datetime):
        aware = deadline if deadline.tzinfo else deadline.replace(tzinfo=zone)
        return aware.astimezone(UTC)
    return localize(datetime.combine(deadline + timedelta(days=1), time(0)), zone)


@dataclass(frozen=True, slots=True)
class Reminder:
    """One reminder of a schedule: its offset (`step`), when it is due, whether it passed, and
    the business-day moves that placed it (empty without a calendar or when none was needed)."""

    step: str
    due: datetime
    local: datetime
    past: bool
    moves: tuple[Move, ...] = ()


def plan_schedule(
    deadline: date | datetime,
    offsets: Sequence[str],
    *,
    at: time | None,
    zone: ZoneInfo,
    calendar: HolidayBase | None,
    now: datetime,
) -> list[Reminder]:
    """Every offset's reminder, flagged `past` when its time is not after `now`."""
    reminders = []
    for text in offsets:
        offset = parse_duration(text)
        due = reminder_time(deadline, offset, at=at, zone=zone, calendar=calendar)
        moves: tuple[Move, ...] = ()
        if calendar is not None:
            unmoved = reminder_time(deadline, offset, at=at, zone=zone, calendar=None)
            moves = tuple(business_moves(unmoved.astimezone(zone).date(), calendar))
        local = due.astimezone(zone)
        reminders.append(Reminder(step=text, due=due, local=local, past=due <= now, moves=moves))
    return reminders


def parse_deadline(value: object) -> date | datetime:
    """An event field as a date or datetime; ValueError with an example otherwise."""
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                return date.fromisoformat(text)
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a date like 2027-01-15 or a datetime with its offset")
