"""Queries of the console's own tables; every function takes the session as a keyword."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.console.models import Staff, StaffSession


def utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every one we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def add_staff(
    *,
    session: Session,
    email: str,
    password_hash: str,
    totp_secret: str | None,
    role: str,
    agency_id: str | None,
    now: datetime,
) -> Staff:
    staff = Staff(
        email=email,
        password_hash=password_hash,
        totp_secret=totp_secret,
        role=role,
        agency_id=agency_id,
        disabled=False,
        failures=0,
        created_at=now,
    )
    session.add(staff)
    session.flush()
    return staff


def staff_by_email(*, session: Session, email: str) -> Staff | None:
    return session.scalars(select(Staff).where(Staff.email == email)).one_or_none()


def staff_by_id(*, session: Session, staff_id: int) -> Staff | None:
    return session.get(Staff, staff_id)


def list_staff(*, session: Session) -> list[Staff]:
    return list(session.scalars(select(Staff).order_by(Staff.email)))


def add_session(
    *, session: Session, token_hash: str, staff_id: int, csrf_token: str, now: datetime
) -> StaffSession:
    row = StaffSession(
        token_hash=token_hash,
        staff_id=staff_id,
        csrf_token=csrf_token,
        created_at=now,
        last_seen_at=now,
    )
    session.add(row)
    return row


def get_session(*, session: Session, token_hash: str) -> StaffSession | None:
    return session.get(StaffSession, token_hash)


def end_sessions_of(*, session: Session, staff_id: int, now: datetime) -> None:
    """End every live session of a staff member (disabled accounts sign out everywhere)."""
    session.execute(
        update(StaffSession)
        .where(StaffSession.staff_id == staff_id, StaffSession.ended_at.is_(None))
        .values(ended_at=now)
    )
