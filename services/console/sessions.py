"""Signed-in browsers: server-side session rows with idle and absolute expiry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from services.console import repository
from services.console.models import Staff
from services.console.security import new_token, token_hash

# Writing last_seen_at on every page would make each read a write; a minute is fine-grained
# enough for a 30-minute idle limit.
_TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Member:
    """The signed-in staff member, as the pages see them."""

    id: int
    email: str
    role: str
    agency_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def read_only(self) -> bool:
        return self.role == "viewer"

    def may_manage(self, agency_id: str) -> bool:
        """Admins manage every agency; editors only their own."""
        return self.is_admin or (self.role == "editor" and self.agency_id == agency_id)

    def may_see(self, agency_id: str) -> bool:
        """Admins and viewers see every agency; editors only their own."""
        return self.role in ("admin", "viewer") or self.agency_id == agency_id


@dataclass(frozen=True)
class Lifetime:
    idle: timedelta
    absolute: timedelta


def member_of(staff: Staff) -> Member:
    return Member(id=staff.id, email=staff.email, role=staff.role, agency_id=staff.agency_id)


def start(*, session: Session, staff: Staff, now: datetime) -> str:
    """A new session for `staff`; returns the token the cookie carries."""
    token = new_token()
    repository.add_session(
        session=session,
        token_hash=token_hash(token),
        staff_id=staff.id,
        csrf_token=new_token(),
        now=now,
    )
    return token


def current(*, session: Session, token: str, lifetime: Lifetime, now: datetime) -> Member | None:
    """The member of a live session, touching it; None when it ended, expired or is unknown."""
    row = repository.get_session(session=session, token_hash=token_hash(token))
    if row is None or row.ended_at is not None:
        return None
    last_seen = repository.utc(row.last_seen_at)
    if now - last_seen > lifetime.idle or now - repository.utc(row.created_at) > lifetime.absolute:
        row.ended_at = now
        return None
    staff = repository.staff_by_id(session=session, staff_id=row.staff_id)
    if staff is None or staff.disabled:
        row.ended_at = now
        return None
    if now - last_seen >= _TOUCH_EVERY:
        row.last_seen_at = now
    return member_of(staff)


def end(*, session: Session, token: str, now: datetime) -> None:
    row = repository.get_session(session=session, token_hash=token_hash(token))
    if row is not None and row.ended_at is None:
        row.ended_at = now
