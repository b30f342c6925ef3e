"""Staff accounts and sessions on both databases (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from common.db import make_engine, make_sessions
from services.console import sessions, staff
from services.console.config import Settings
from services.console.main import migrate

NOW = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
LIFETIME = sessions.Lifetime(idle=timedelta(minutes=30), absolute=timedelta(hours=8))
THROTTLE = staff.Throttle(after=5, first=timedelta(seconds=30))


@pytest.fixture
def db(database_url):
    migrate(Settings(database_url=database_url))
    engine = make_engine(database_url)
    yield make_sessions(engine)
    engine.dispose()


def test_sign_in_session_and_expiry_on_each_database(db):
    with db.begin() as session:
        _, secret = staff.add(
            session=session,
            email="ana@example.es",
            password="pw",
            role="viewer",
            agency_id=None,
            now=NOW,
        )
    code = pyotp.TOTP(secret).at(NOW)
    with db.begin() as session:
        outcome = staff.sign_in(
            session=session,
            email="ANA@example.es",
            password="pw",
            code=code,
            throttle=THROTTLE,
            now=NOW,
        )
        assert outcome.staff is not None
        token = sessions.start(session=session, staff=outcome.staff, now=NOW)
    with db.begin() as session:
        seen = sessions.current(
            session=session, token=token, lifetime=LIFETIME, now=NOW + timedelta(minutes=29)
        )
        assert seen is not None and seen.read_only and seen.email == "ana@example.es"
    with db.begin() as session:
        later = NOW + timedelta(minutes=29 + 31)
        assert sessions.current(session=session, token=token, lifetime=LIFETIME, now=later) is None


def test_the_wait_doubles_with_each_failure_after_five(db):
    with db.begin() as session:
        staff.add(
            session=session,
            email="b@example.es",
            password="pw",
            role="admin",
            agency_id=None,
            now=NOW,
            with_totp=False,
        )
    waits = []
    moment = NOW
    for _ in range(7):
        with db.begin() as session:
            outcome = staff.sign_in(
                session=session,
                email="b@example.es",
                password="bad",
                code="",
                throttle=THROTTLE,
                now=moment,
            )
        waits.append(outcome.wait)
        moment += outcome.wait or timedelta(0)
    assert waits[:4] == [None] * 4
    assert waits[4:] == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]
    with db.begin() as session:
        good = staff.sign_in(
            session=session,
            email="b@example.es",
            password="pw",
            code="",
            throttle=THROTTLE,
            now=moment,
        )
        assert good.staff is not None and good.staff.failures == 0
