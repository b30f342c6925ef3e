"""The seeded case generator, and what each case must (and must not) get: the oracle.

A case is one licence: an opening event, maybe a duplicate of it, an extension (a new
deadline), a renewal that cancels, a STOP, quiet hours, a move to another zone, a critical
rule; and the faults that hit the world meanwhile (engine lag, crashes, a lost answer).
The oracle computes due times with `zoneinfo` alone, not with the code under test.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ZONES = ("Europe/Madrid", "Atlantic/Canary", "America/Bogota", "Australia/Lord_Howe")
OFFSETS = (("-P7D", 7), ("-P1D", 1))
AT = time(9, 0)
YEAR = timedelta(days=365)


@dataclass(frozen=True, slots=True)
class Stall:
    """The rule engine consumes nothing in `[start, end)`: lag."""

    start: datetime
    end: datetime

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start <= end and self.end >= start


@dataclass
class Case:
    index: int
    zone: str
    critical: bool
    opened: datetime
    expires_on: date
    duplicate: bool = False
    extension: tuple[datetime, date] | None = None
    cancel_at: datetime | None = None
    stop_at: datetime | None = None
    quiet: tuple[time, time] | None = None
    move: tuple[datetime, str] | None = None
    has_email: bool = True
    lose_answer: bool = False
    engine_crash: bool = False
    scheduler_crash: bool = False
    stall: Stall | None = None
    scheduler_down: Stall | None = None  # the scheduler's process is down, then restarts
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def citizen_id(self) -> str:
        return f"C{self.index}"

    @property
    def subject(self) -> str:
        return f"license/L-{self.index:07d}"

    @property
    def event_type(self) -> str:
        return "license.urgent" if self.critical else "license.expiring"

    def describe(self) -> str:
        parts = [f"case {self.index}: {self.event_type} {self.subject} in {self.zone}"]
        parts.append(f"  opened {self.opened:%Y-%m-%d %H:%M:%S}Z, expires on {self.expires_on}")
        for name in ("duplicate", "extension", "cancel_at", "stop_at", "quiet", "move"):
            value = getattr(self, name)
            if value:
                parts.append(f"  {name}: {value}")
        for name in (
            "has_email",
            "lose_answer",
            "engine_crash",
            "scheduler_crash",
            "stall",
            "scheduler_down",
        ):
            value = getattr(self, name)
            if (name == "has_email") != bool(value):
                parts.append(f"  {name}: {value}")
        return "\n".join(parts)


def _moment(rng: random.Random, start: datetime, end: datetime) -> datetime:
    span = max(1, int((end - start).total_seconds() * 1000))
    return start + timedelta(milliseconds=rng.randrange(span))


def generate(seed: int, count: int, start: datetime) -> list[Case]:
    """`count` cases opened over a year from `start`, the same for the same seed."""
    rng = random.Random(seed)  # noqa: S311  # reproducible by design, not a secret
    cases = []
    for index in range(count):
        opened = _moment(rng, start, start + YEAR)
        case = Case(
            index=index,
            zone=rng.choice(ZONES),
            critical=rng.random() < 0.1,
            opened=opened,
            expires_on=(opened + timedelta(days=rng.randint(2, 45))).date(),
        )
        _decorate(case, rng)
        cases.append(case)
    return cases


def _decorate(case: Case, rng: random.Random) -> None:
    end = deadline_end(case.expires_on, ZoneInfo(case.zone))
    case.duplicate = rng.random() < 0.05
    if rng.random() < 0.1:
        at = _moment(rng, case.opened, end)
        case.extension = (at, case.expires_on + timedelta(days=rng.randint(1, 30)))
        end = deadline_end(case.extension[1], ZoneInfo(case.zone))
    if rng.random() < 0.35:
        # Around a reminder's due time often: the race the watermark closes.
        due = reminders_of(case.expires_on, ZoneInfo(case.zone))[rng.randrange(2)][1]
        near = due + timedelta(seconds=rng.uniform(-30, 30))
        case.cancel_at = (
            near
            if rng.random() < 0.5 and near > case.opened
            else _moment(rng, case.opened, end + timedelta(days=1))
        )
    if rng.random() < 0.08:
        case.stop_at = _moment(rng, case.opened, end)
    case.has_email = rng.random() < 0.8
    if rng.random() < 0.15:
        case.quiet = rng.choice([(time(8, 0), time(10, 0)), (time(21, 0), time(9, 30))])
    elif rng.random() < 0.06:
        case.move = (_moment(rng, case.opened, end), rng.choice(ZONES))
    case.lose_answer = rng.random() < 0.03
    case.engine_crash = rng.random() < 0.03
    case.scheduler_crash = rng.random() < 0.03
    if rng.random() < 0.03:
        # Lag: mostly seconds to minutes; now and then the engine stays down for days.
        due = reminders_of(case.expires_on, ZoneInfo(case.zone))[rng.randrange(2)][1]
        length = timedelta(seconds=rng.uniform(2, 600))
        if rng.random() < 0.1:
            length = timedelta(days=rng.uniform(1.5, 3))
        begin = due - timedelta(seconds=rng.uniform(0, min(300.0, length.total_seconds())))
        case.stall = Stall(begin, begin + length)
    if rng.random() < 0.01:
        # Down from just before the last reminder: sometimes past the deadline, when the
        # reminder must expire instead of going out (the scheduler's fire-time re-check).
        due = reminders_of(case.expires_on, ZoneInfo(case.zone))[1][1]
        length = timedelta(seconds=rng.uniform(1, 600))
        if rng.random() < 0.3:
            length = timedelta(hours=rng.uniform(10, 48))
        begin = due - timedelta(seconds=rng.uniform(0, 60))
        case.scheduler_down = Stall(begin, begin + length)


def localize(wall: datetime, zone: ZoneInfo) -> datetime:
    return wall.replace(tzinfo=zone).astimezone(UTC)


def deadline_end(day: date, zone: ZoneInfo) -> datetime:
    """A date deadline passes at the next local midnight."""
    return localize(datetime.combine(day + timedelta(days=1), time(0)), zone)


def reminders_of(expires_on: date, zone: ZoneInfo) -> list[tuple[str, datetime]]:
    """Each step and its due instant: `days` before the deadline at 09:00 local."""
    return [
        (step, localize(datetime.combine(expires_on - timedelta(days=days), AT), zone))
        for step, days in OFFSETS
    ]


def in_quiet(moment: datetime, zone: ZoneInfo, window: tuple[time, time]) -> bool:
    wall = moment.astimezone(zone).time()
    start, end = window
    return start <= wall < end if start < end else (wall >= start or wall < end)


def quiet_end(moment: datetime, zone: ZoneInfo, window: tuple[time, time]) -> datetime:
    """The first instant after `moment` when the window is over (its local end time)."""
    local = moment.astimezone(zone)
    for days in range(3):
        candidate = localize(datetime.combine(local.date() + timedelta(days=days), window[1]), zone)
        if candidate > moment:
            return candidate
    raise AssertionError("no end of the quiet hours within two days")
