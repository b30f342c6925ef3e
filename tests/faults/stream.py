"""An agency publishing a steady stream of unique events, and counting what reached citizens."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

from avisa.admin import example_event
from tests.e2e.system import AGENCY_KEY


def unique_event(index: int, run: str) -> dict[str, Any]:
    """The example event with its own id, phone and email, so each delivery is attributable."""
    event = example_event(event_id=f"{run}-{index}")
    citizen = event["data"]["citizen"]
    citizen["id"] = f"{run}-C{index}"
    citizen["phone"] = f"+3461{index:07d}"
    citizen["email"] = f"c{index}.{run}@example.es"
    return event


class AgencyStream:
    """Posts events at `rate_per_s` until stopped; retries each one until it gets a 202.

    That is what a well-behaved agency does with 503s and dropped connections, and it is
    what makes "accepted" mean something: every accepted event must reach its citizen.
    """

    def __init__(self, url: Callable[[], str], *, run: str, rate_per_s: float = 20.0) -> None:
        self._url = url
        self._run = run
        self._interval = 1.0 / rate_per_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.accepted: list[dict[str, Any]] = []
        self.refusals: Counter[str] = Counter()

    def start(self) -> AgencyStream:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 120.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the agency could not finish its last event"

    def _loop(self) -> None:
        index = 0
        with httpx.Client(timeout=15, headers={"Authorization": f"Bearer {AGENCY_KEY}"}) as client:
            while not self._stop.is_set():
                event = unique_event(index, self._run)
                self._publish(client, event)
                self.accepted.append(event)
                index += 1
                time.sleep(self._interval)

    def _publish(self, client: httpx.Client, event: dict[str, Any]) -> None:
        while True:
            try:
                response = client.post(f"{self._url()}/v1/events", json=event)
            except httpx.HTTPError as error:
                self.refusals[type(error).__name__] += 1
                time.sleep(0.2)
                continue
            if response.status_code == 202:
                return
            self.refusals[str(response.status_code)] += 1
            assert response.status_code in (429, 503), response.text
            time.sleep(min(float(response.headers.get("Retry-After", "1")), 2.0))


def deliveries(providers: Any) -> tuple[Counter[str], Counter[str]]:
    """How many SMS each phone and how many emails each address received."""
    sms = Counter(r["form"]["To"] for r in providers.twilio_requests())
    email = Counter(
        to["email"]
        for r in providers.sendgrid_requests()
        for p in r["body"]["personalizations"]
        for to in p["to"]
    )
    return sms, email


def expected(events: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    phones = {e["data"]["citizen"]["phone"] for e in events}
    emails = {e["data"]["citizen"]["email"] for e in events}
    return phones, emails


def assert_exactly_once(providers: Any, events: list[dict[str, Any]]) -> None:
    """Every accepted event reached its citizen once per channel: no loss, no duplicate."""
    sms, email = deliveries(providers)
    phones, emails = expected(events)
    assert set(sms) == phones, f"missing SMS: {len(phones - set(sms))}"
    assert set(email) == emails, f"missing email: {len(emails - set(email))}"
    assert [p for p, n in sms.items() if n > 1] == []
    assert [e for e, n in email.items() if n > 1] == []


def missing(providers: Any, events: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The accepted events whose SMS or email has not reached the fakes, by channel."""
    sms, email = deliveries(providers)
    return {
        "sms": [e["id"] for e in events if e["data"]["citizen"]["phone"] not in sms],
        "email": [e["id"] for e in events if e["data"]["citizen"]["email"] not in email],
    }


def explain_missing(providers: Any, events: list[dict[str, Any]], database_url: str) -> str:
    """What the notifier recorded for each missing delivery: for a failing test's message."""
    import sqlalchemy as sa

    lost = missing(providers, events)
    ids = sorted(set(lost["sms"]) | set(lost["email"]))
    lines = [f"missing sms for {lost['sms'][:20]}, email for {lost['email'][:20]}"]
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            for event_id in ids[:20]:
                rows = connection.execute(
                    sa.text(
                        "SELECT n.id, a.channel, a.status, a.error_code, a.error_detail, a.at "
                        "FROM notifier_notifications n LEFT JOIN notifier_attempts a "
                        "ON a.notification_id = n.id WHERE CAST(n.request AS TEXT) LIKE :pattern"
                    ),
                    {"pattern": f'%"{event_id}"%'},
                ).all()
                lines.append(
                    f"{event_id}: {[tuple(map(str, row)) for row in rows] or 'no notification row'}"
                )
    finally:
        engine.dispose()
    return "\n".join(lines)


def reconciled(database_url: str) -> list[str]:
    """How the notifier settled each attempt a crash left `sending` (their details)."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return list(
                connection.scalars(
                    sa.text(
                        "SELECT error_detail FROM notifier_attempts "
                        "WHERE error_detail LIKE 'reconciled:%' ORDER BY id"
                    )
                )
            )
    finally:
        engine.dispose()


def still_sending(database_url: str) -> int:
    """How many attempts the notifier has not settled yet (`sending`)."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            query = "SELECT count(*) FROM notifier_attempts WHERE status = 'sending'"
            return int(connection.scalar(sa.text(query)) or 0)
    finally:
        engine.dispose()


def wait_until_delivered(
    providers: Any,
    events: list[dict[str, Any]],
    database_url: str,
    *,
    stall_s: float = 60.0,
    bound_s: float = 900.0,
) -> None:
    """Wait until every accepted event has reached its citizen on both channels.

    Fails when nothing new arrives for `stall_s` (something is stuck or lost) or after
    `bound_s` in all, naming what is missing and what the notifier recorded for it. A long
    stream drains at the providers' rate limits (10/s by default), so a fixed timeout would
    fail a slow but healthy run; a stall is what a loss looks like."""
    started = progressed = time.monotonic()
    left = -1
    while True:
        lost = missing(providers, events)
        now = time.monotonic()
        if not lost["sms"] and not lost["email"]:
            return
        if len(lost["sms"]) + len(lost["email"]) != left:
            left, progressed = len(lost["sms"]) + len(lost["email"]), now
        if now - progressed > stall_s or now - started > bound_s:
            report = explain_missing(providers, events, database_url)
            raise AssertionError(f"not everything was delivered:\n{report}")
        time.sleep(0.5)
