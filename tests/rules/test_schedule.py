"""Reminder times: property-based over DST days, odd zones, holidays and passed offsets."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.durations import Duration, parse_duration
from services.rules.reminder_dates import (
    business_calendar,
    check_calendar,
    deadline_end,
    holiday_name,
    is_business_day,
    plan_schedule,
    reminder_time,
    reminder_times,
)

ZONES = [
    "Europe/Madrid",
    "Atlantic/Canary",
    "America/New_York",
    "America/Santiago",  # DST changes at midnight: whole local midnights are skipped
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Pacific/Chatham",
    "Asia/Kolkata",
]
MADRID = ZoneInfo("Europe/Madrid")
SPAIN = business_calendar("ES")

zones = st.sampled_from(ZONES).map(ZoneInfo)
days = st.dates(min_value=date(2024, 1, 1), max_value=date(2032, 12, 31))
local_times = st.times().map(lambda t: t.replace(microsecond=0))
day_offsets = st.integers(min_value=0, max_value=400).map(lambda n: Duration(sign=-1, days=n))


def occurrences(wall: datetime, zone: ZoneInfo) -> list[datetime]:
    """The UTC instants at which the wall clock in `zone` shows `wall` (0, 1 or 2)."""
    found = set()
    for fold in (0, 1):
        instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == wall:
            found.add(instant)
    return sorted(found)


@settings(max_examples=400)
@given(deadline=days, offset=day_offsets, at=local_times, zone=zones)
def test_a_date_reminder_is_at_the_local_time_or_just_after_a_gap(deadline, offset, at, zone):
    due = reminder_time(deadline, offset, at=at, zone=zone, calendar=None)
    wall = datetime.combine(deadline - timedelta(days=offset.days), at)
    candidates = occurrences(wall, zone)
    if candidates:  # the time exists; when it repeats, the first occurrence wins
        assert due == candidates[0]
    else:  # skipped by DST: moved forward by the gap, never back, never far
        local = due.astimezone(zone).replace(tzinfo=None)
        assert wall < local <= wall + timedelta(hours=2)
    assert due.tzinfo == UTC


@settings(max_examples=300)
@given(deadline=days, offset=day_offsets, at=local_times)
def test_a_reminder_never_lands_on_a_weekend_or_holiday(deadline, offset, at):
    plain = reminder_time(deadline, offset, at=at, zone=MADRID, calendar=None)
    moved = reminder_time(deadline, offset, at=at, zone=MADRID, calendar=SPAIN)
    moved_day = moved.astimezone(MADRID).date()
    plain_day = plain.astimezone(MADRID).date()
    assert is_business_day(moved_day, SPAIN)
    assert moved_day <= plain_day
    # it moved to the *previous* business day: nothing in between was one
    between = [moved_day + timedelta(days=n) for n in range(1, (plain_day - moved_day).days + 1)]
    assert not any(is_business_day(day, SPAIN) for day in between)


@settings(max_examples=300)
@given(
    deadline=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2032, 1, 1)),
    offsets=st.lists(
        st.integers(min_value=-90 * 86400, max_value=90 * 86400).map(
            lambda s: Duration(sign=-1 if s < 0 else 1, seconds=abs(s))
        ),
        max_size=6,
    ),
    now=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2032, 1, 1)),
    zone=zones,
)
def test_passed_reminders_are_skipped_and_exact_offsets_are_elapsed_time(
    deadline, offsets, now, zone
):
    start = deadline.replace(tzinfo=UTC)
    now = now.replace(tzinfo=UTC)
    times = reminder_times(start, offsets, at=None, zone=zone, calendar=None, now=now)
    expected = [start + o.sign * timedelta(seconds=o.seconds) for o in offsets]
    assert times == [t for t in expected if t > now]


@given(deadline=days, zone=zones)
def test_a_date_deadline_lasts_until_the_end_of_its_local_day(deadline, zone):
    end = deadline_end(deadline, zone)
    assert (end - timedelta(microseconds=1)).astimezone(zone).date() == deadline
    assert end.astimezone(zone).date() == deadline + timedelta(days=1)


def test_nonexistent_and_repeated_times_in_madrid():
    at = time(2, 30)
    spring = reminder_time(
        date(2027, 3, 29), parse_duration("-P1D"), at=at, zone=MADRID, calendar=None
    )
    assert spring == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)  # 03:30 CEST: moved forward
    autumn = reminder_time(
        date(2027, 11, 1), parse_duration("-P1D"), at=at, zone=MADRID, calendar=None
    )
    assert autumn == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)  # the first 02:30 (CEST)


def test_days_keep_the_wall_clock_across_dst_and_months_keep_the_day():
    deadline = datetime(2027, 4, 2, 9, 0, tzinfo=MADRID)  # CEST
    week_before = reminder_time(
        deadline, parse_duration("-P7D"), at=None, zone=MADRID, calendar=None
    )
    assert week_before.astimezone(MADRID).replace(tzinfo=None) == datetime(2027, 3, 26, 9, 0)
    month = reminder_time(
        date(2027, 3, 31), parse_duration("-P1M"), at=None, zone=MADRID, calendar=None
    )
    assert month.astimezone(MADRID).date() == date(2027, 2, 28)


def test_the_contracts_schedule_with_the_spanish_calendar():
    reminders = plan_schedule(
        date(2027, 1, 15),
        ["-P30D", "-P7D", "-P1D"],
        at=time(9, 0),
        zone=MADRID,
        calendar=business_calendar("ES-MD"),
        now=datetime(2026, 12, 20, tzinfo=UTC),
    )
    local = [(r.step, r.local.replace(tzinfo=None), r.past) for r in reminders]
    assert local == [
        ("-P30D", datetime(2026, 12, 16, 9, 0), True),  # 16 Dec: already passed
        ("-P7D", datetime(2027, 1, 8, 9, 0), False),  # a Friday
        # 14 Jan 2027 is a Thursday; 1 day before 15 Jan
        ("-P1D", datetime(2027, 1, 14, 9, 0), False),
    ]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    on_epiphany = plan_schedule(
        date(2027, 1, 13),
        ["-P7D"],
        at=time(9, 0),
        zone=MADRID,
        calendar=SPAIN,
        now=now,
    )
    # 6 Jan is Epiphany, so the reminder goes on Tuesday 5 Jan
    assert on_epiphany[0].local.date() == date(2027, 1, 5)
    on_sunday = plan_schedule(
        date(2027, 1, 18), ["-P1D"], at=time(9, 0), zone=MADRID, calendar=SPAIN, now=now
    )
    assert on_sunday[0].local.replace(tzinfo=None) == datetime(2027, 1, 15, 9, 0)  # the Friday


@pytest.mark.parametrize(
    ("code", "ok"), [("ES", True), ("es-md", True), ("ES-XX", False), ("ZZ", False)]
)
def test_calendars_are_checked(code, ok):
    assert (check_calendar(code) is None) is ok


def test_each_move_off_a_weekend_or_holiday_is_reported_with_its_reason():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    # 14 Jun 2027 is a Monday: the day before is Sunday 13, then Saturday 12, then Friday 11
    [sunday] = plan_schedule(
        date(2027, 6, 14), ["-P1D"], at=time(9, 0), zone=MADRID, calendar=SPAIN, now=now
    )
    assert [(m.from_day, m.to_day, m.reason, m.holiday) for m in sunday.moves] == [
        (date(2027, 6, 13), date(2027, 6, 12), "weekend", None),
        (date(2027, 6, 12), date(2027, 6, 11), "weekend", None),
    ]
    [epiphany] = plan_schedule(
        date(2027, 1, 13), ["-P7D"], at=time(9, 0), zone=MADRID, calendar=SPAIN, now=now
    )
    [move] = epiphany.moves
    assert (move.from_day, move.to_day, move.reason) == (
        date(2027, 1, 6),
        date(2027, 1, 5),
        "holiday",
    )
    assert move.holiday  # named by the holidays package (in the process's locale)
    assert holiday_name("ES", date(2027, 1, 6), "es") == "Epifanía del Señor"
    assert holiday_name("es-md", date(2027, 1, 6), "en") == "Epiphany"  # the package's en_US
    assert holiday_name("ES", date(2027, 1, 6), "fr") == "Epifanía del Señor"  # its own language
    assert holiday_name("ES", date(2027, 1, 7), "es") is None
    [weekday] = plan_schedule(
        date(2027, 1, 15), ["-P1D"], at=time(9, 0), zone=MADRID, calendar=SPAIN, now=now
    )
    assert weekday.moves == ()
    [no_calendar] = plan_schedule(
        date(2027, 6, 14), ["-P1D"], at=time(9, 0), zone=MADRID, calendar=None, now=now
    )
    assert no_calendar.moves == () and no_calendar.local.date() == date(2027, 6, 13)
