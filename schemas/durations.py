"""Signed ISO-8601 durations ("-P30D", "PT2H", "-P1M") as used by rule schedules."""

from __future__ import annotations

import re
from dataclasses import dataclass

_PATTERN = re.compile(
    r"^(?P<sign>[+-])?P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?"
    r"(?:(?P<days>\d+)D)?(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?"
    r"(?:(?P<seconds>\d+)S)?)?$"
)


@dataclass(frozen=True, slots=True)
class Duration:
    """A calendar-aware duration: months and years are kept apart from days and seconds."""

    sign: int
    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0


def parse_duration(text: str) -> Duration:
    """Parse a signed ISO-8601 duration, raising ValueError with an example when it is not one."""
    match = _PATTERN.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"'{text}' is not an ISO-8601 duration; write it like -P30D, P2D or -PT2H")
    parts = {k: int(v) for k, v in match.groupdict().items() if k != "sign" and v is not None}
    return Duration(sign=-1 if match.group("sign") == "-" else 1, **parts)
