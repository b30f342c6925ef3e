"""Queries of agency limits and daily usage; every function takes the session as a keyword."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Table, and_, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.events.models import AgencyLimits, DailyUsage


def get(*, session: Session, agency_id: str) -> AgencyLimits | None:
    return session.get(AgencyLimits, agency_id)


def put(
    *,
    session: Session,
    agency_id: str,
    requests_per_minute: int | None,
    daily_events: int | None,
    now: datetime,
) -> AgencyLimits:
    limits = session.get(AgencyLimits, agency_id)
    if limits is None:
        limits = AgencyLimits(agency_id=agency_id, updated_at=now)
        session.add(limits)
    limits.requests_per_minute = requests_per_minute
    limits.daily_events = daily_events
    limits.updated_at = now
    return limits


def used(*, session: Session, agency_id: str, day: str) -> int:
    query = select(DailyUsage.accepted).where(
        DailyUsage.agency_id == agency_id, DailyUsage.day == day
    )
    return int(session.scalar(query) or 0)


_USAGE = cast(Table, DailyUsage.__table__)
_OF_DAY = and_(_USAGE.c.agency_id == bindparam("of_agency"), _USAGE.c.day == bindparam("of_day"))
# Built once: the intake runs this for every group of requests.
_ADD_WITHIN = (
    update(_USAGE)
    .where(_OF_DAY, _USAGE.c.accepted + bindparam("count") <= bindparam("cap"))
    .values(accepted=_USAGE.c.accepted + bindparam("count"))
)


def _add_within(*, session: Session, agency_id: str, day: str, count: int, cap: int) -> bool:
    params = {"of_agency": agency_id, "of_day": day, "count": count, "cap": cap}
    return bool(session.connection().execute(_ADD_WITHIN, params).rowcount)


def reserve(*, session: Session, agency_id: str, day: str, count: int, cap: int) -> bool:
    """Add `count` to the day's usage if it stays within `cap` (atomic across replicas)."""
    if _add_within(session=session, agency_id=agency_id, day=day, count=count, cap=cap):
        return True
    if session.get(DailyUsage, (agency_id, day)) is not None or count > cap:
        return False
    try:
        with session.begin_nested():
            session.add(DailyUsage(agency_id=agency_id, day=day, accepted=count))
    except IntegrityError:  # another request created the row first
        return _add_within(session=session, agency_id=agency_id, day=day, count=count, cap=cap)
    return True


def release(*, session: Session, agency_id: str, day: str, count: int) -> None:
    """Give back reserved events that were not accepted (duplicates, broker down)."""
    if count > 0:
        session.execute(
            update(DailyUsage)
            .where(DailyUsage.agency_id == agency_id, DailyUsage.day == day)
            .values(accepted=DailyUsage.accepted - count)
        )
