"""Staff accounts: password hashes, security codes (TOTP), and the sign-in decision."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from services.console import repository
from services.console.models import Staff

ROLES = ("admin", "editor", "viewer")
Role = Literal["admin", "editor", "viewer"]
ISSUER = "Avisa"
MAX_LOCKOUT = timedelta(minutes=15)

_hasher = PasswordHasher()


class StaffError(Exception):
    """A staff command that cannot be done (duplicate email, unknown account, bad role)."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_totp_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str) -> str:
    """The `otpauth://totp/...` URI an authenticator app reads (as a QR code or pasted)."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def code_step(secret: str, code: str, *, at: datetime, after: int | None) -> int | None:
    """The time step of a 6-digit code of the period of `at` or the one either side (clocks
    drift), if it is later than `after`, the step last used: a code works once."""
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now_step = totp.timecode(at)
    for step in (now_step - 1, now_step, now_step + 1):
        if (after is None or step > after) and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def normalise_email(email: str) -> str:
    return email.strip().lower()


def add(
    *,
    session: Session,
    email: str,
    password: str,
    role: str,
    agency_id: str | None,
    now: datetime,
    with_totp: bool = True,
) -> tuple[Staff, str | None]:
    """Create an account; returns it and its TOTP secret (None without a security code)."""
    if role not in ROLES:
        raise StaffError(f"role must be one of {', '.join(ROLES)}")
    if role == "editor" and not agency_id:
        raise StaffError("an editor needs --agency")
    if not password:
        raise StaffError("the password is empty")
    email = normalise_email(email)
    if "@" not in email:
        raise StaffError("expected an email address")
    if repository.staff_by_email(session=session, email=email) is not None:
        raise StaffError(f"{email} already has an account")
    secret = new_totp_secret() if with_totp else None
    staff = repository.add_staff(
        session=session,
        email=email,
        password_hash=hash_password(password),
        totp_secret=secret,
        role=role,
        agency_id=agency_id,
        now=now,
    )
    return staff, secret


def disable(*, session: Session, email: str, now: datetime) -> Staff:
    staff = repository.staff_by_email(session=session, email=normalise_email(email))
    if staff is None:
        raise StaffError(f"no account for {email}")
    staff.disabled = True
    repository.end_sessions_of(session=session, staff_id=staff.id, now=now)
    return staff


@dataclass(frozen=True)
class SignInOutcome:
    """What a sign-in attempt came to: the staff member, or why not."""

    staff: Staff | None
    problem: Literal["wrong", "code", "locked"] | None = None
    wait: timedelta | None = None


@dataclass(frozen=True)
class Throttle:
    """After `after` failures in a row, each attempt waits `first`, doubling per failure."""

    after: int
    first: timedelta

    def lock_for(self, failures: int) -> timedelta | None:
        if failures < self.after:
            return None
        wait: timedelta = self.first * 2 ** (failures - self.after)
        return min(wait, MAX_LOCKOUT)


def sign_in(
    *,
    session: Session,
    email: str,
    password: str,
    code: str,
    throttle: Throttle,
    now: datetime,
) -> SignInOutcome:
    """Check the credentials; counts failures and slows the account down after too many."""
    staff = repository.staff_by_email(session=session, email=normalise_email(email))
    if staff is None or staff.disabled:
        _hasher.hash(password)  # the same work as a real check: no timing tells who exists
        return SignInOutcome(None, "wrong")
    if staff.locked_until is not None and repository.utc(staff.locked_until) > now:
        return SignInOutcome(None, "locked", repository.utc(staff.locked_until) - now)
    problem: Literal["wrong", "code"] | None = None
    step = None
    if not password_matches(staff.password_hash, password):
        problem = "wrong"
    elif staff.totp_secret is not None:
        step = code_step(staff.totp_secret, code.strip(), at=now, after=staff.totp_last_step)
        problem = "code" if step is None else None
    if problem is None:
        staff.failures, staff.locked_until = 0, None
        staff.totp_last_step = step if step is not None else staff.totp_last_step
        return SignInOutcome(staff)
    staff.failures += 1
    wait = throttle.lock_for(staff.failures)
    staff.locked_until = now + wait if wait else None
    return SignInOutcome(None, "locked" if wait else problem, wait)
