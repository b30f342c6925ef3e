"""Content retention in the rules service: timers that fired, were cancelled or expired longer
ago than the retention period lose their rendered texts and the citizen's details; pending
timers and recent ones keep everything, and a purged timer still reports its status."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from common.db import make_engine, make_sessions
from schemas.events import Citizen, EventRef
from schemas.notifications import (
    Channel,
    Content,
    NotificationRequest,
    RuleRef,
    SmsContent,
    Status,
)
from services.rules import timer_steps, timers
from services.rules.config import Settings
from services.rules.models import TimerRow
from services.rules.retention import PURGED, ContentPurger
from tests.rules.test_timers import settings_for

PHONE, EMAIL, BODY = "+34600111222", "ana@example.es", "Hola Ana, tu cita es mañana"
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def request_for(step: str) -> NotificationRequest:
    return NotificationRequest(
        id=str(uuid.uuid4()),
        event=EventRef(source="sede", id=f"e-{step}", type="case.opened", subject="case/1"),
        rule=RuleRef(id="seguimiento", version=1),
        citizen=Citizen(id="ES-1", name="Ana", phone=PHONE, email=EMAIL, timezone="Europe/Madrid"),
        channels=[Channel.SMS],
        content=Content(sms=SmsContent(body=BODY)),
        locale="es",
        scheduled_for=NOW - timedelta(days=10),
        step=step,
    )


@pytest.fixture
def sessions(broker, database_url):
    settings = settings_for(broker, database_url)
    engine = make_engine(settings.database_url)
    yield make_sessions(engine)
    engine.dispose()


def store(sessions, state: str, left_pending: datetime) -> str:
    request = request_for(f"{state}-{left_pending.day}")
    row = timers.timer_row(request, subject="case/1", event_time=NOW, now=left_pending)
    row.state = state
    with sessions.begin() as session:
        session.add(row)
    return request.id


def test_timers_out_of_pending_past_retention_lose_their_content(sessions):
    old, recent = NOW - timedelta(days=8), NOW - timedelta(days=2)
    gone = [store(sessions, state, old) for state in ("fired", "cancelled", "expired")]
    kept = [store(sessions, "fired", recent), store(sessions, "pending", old)]
    purger = ContentPurger(
        sessions, retention=timedelta(days=7), interval_s=60, batch=2, clock=lambda: NOW
    )
    assert purger.purge() == 3
    assert purger.purge() == 0  # nothing twice

    with sessions() as session:
        rows = {r.notification_id: r for r in session.query(TimerRow)}
    for nid in gone:
        row = rows[nid]
        text = json.dumps(row.payload)
        assert PHONE not in text and EMAIL not in text and BODY not in text and "Ana" not in text
        assert row.payload["citizen"] == {"id": "ES-1"} and row.payload["content"] == {}
        assert row.state in {"fired", "cancelled", "expired"} and row.payload["id"] == nid
        assert timers.as_utc(row.updated_at) == old  # the purge does not move the state's time
        # a redelivered cancelling event still reports what it cancelled, from what is left
        change = timer_steps.status_of(row, Status.CANCELLED, at=row.updated_at)
        assert (change.notification_id, change.event.id) == (nid, row.event_id)
    for nid in kept:
        assert PURGED not in rows[nid].payload
        assert rows[nid].payload["content"]["sms"]["body"] == BODY
        NotificationRequest.model_validate(rows[nid].payload)


def test_the_rules_service_reads_the_shared_retention_setting(monkeypatch):
    monkeypatch.delenv("AVISA_CONTENT_RETENTION_DAYS", raising=False)
    assert Settings().content_retention_days == 7
    monkeypatch.setenv("AVISA_CONTENT_RETENTION_DAYS", "30")
    assert Settings().content_retention_days == 30
