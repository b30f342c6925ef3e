"""The status and decision recorders over whole poll batches, straight on the database:
one batch must come to what one record at a time comes to, and a redelivered batch to nothing."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from common import db
from schemas.decisions import Decision as DecisionIn
from schemas.decisions import RuleDecision
from schemas.events import EventRef
from schemas.notifications import Channel, Status, StatusChange
from services.events import repository
from services.events.callbacks import store as callback_store
from services.events.consumer import DecisionRecorder, StatusRecorder
from services.events.main import MIGRATIONS, VERSION_TABLE
from services.events.models import CallbackDelivery, Decision, Notification, StatusHistory

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)


@pytest.fixture
def sessions(database_url: str) -> Any:
    db.migrate(database_url, script_location=MIGRATIONS, version_table=VERSION_TABLE)
    engine = db.make_engine(database_url)
    made = db.make_sessions(engine)
    with made.begin() as session:
        for agency in ("subscribed", "quiet"):
            repository.add_agency(session=session, agency_id=agency, name=agency, now=NOW)
        session.flush()
        callback_store.put(
            session=session, agency_id="subscribed", url="http://127.0.0.1:9/", secret="s", now=NOW
        )
    yield made
    engine.dispose()


def change(nid: str, status: Status, minutes: int, source: str = "subscribed/x", **extra: Any):
    event = EventRef(source=source, id=f"e-{nid}", type="t", subject=f"s-{nid}")
    return StatusChange(
        notification_id=nid, event=event, status=status, at=T0 + timedelta(minutes=minutes), **extra
    )


def stream(nid: str, source: str = "subscribed/x") -> list[StatusChange]:
    """A notification's life out of order, with redeliveries and a late `failed`."""
    later = T0 + timedelta(days=3)
    return [
        change(nid, Status.SCHEDULED, 0, source, rule="r", scheduled_for=later),
        change(nid, Status.DELIVERED, 3, source, channel=Channel.SMS),
        change(nid, Status.QUEUED, 1, source, channel=Channel.EMAIL, rule="other"),
        change(nid, Status.SENT, 2, source, channel=Channel.SMS, detail="SM1"),
        change(nid, Status.DELIVERED, 3, source, channel=Channel.SMS),
        change(nid, Status.FAILED, 4, source, channel=Channel.EMAIL, detail="bounced"),
        change(nid, Status.SENT, 2, source, channel=Channel.SMS, detail="SM1"),
    ]


def feed(recorder: StatusRecorder | DecisionRecorder, items: list[Any]) -> None:
    for item in items:
        recorder.handle(SimpleNamespace(value=item.model_dump_json().encode()))  # type: ignore[arg-type]
    recorder.flush()


def snapshot(made: sessionmaker[Session]) -> dict[str, Any]:
    with made() as session:
        notifications = {
            row.id: (
                row.status,
                row.status_at,
                row.channel,
                row.rule,
                row.first_at,
                row.scheduled_for,
                row.updated_at,
                row.subject,
            )
            for row in session.scalars(select(Notification))
        }
        history = sorted(
            (row.notification_id, row.status, row.at, row.detail, row.channel)
            for row in session.scalars(select(StatusHistory))
        )
        queued = sorted(
            (row.agency_id, row.notification_id, row.body)
            for row in session.scalars(select(CallbackDelivery))
        )
    return {"notifications": notifications, "history": history, "callbacks": queued}


def test_one_batch_comes_to_what_one_record_at_a_time_does(sessions):
    nids = [str(uuid.uuid4()) for _ in range(4)]
    changes = [c for nid in nids for c in stream(nid)] + stream("q-1", source="quiet")
    random.Random(7).shuffle(changes)
    batched = StatusRecorder(sessions, clock=lambda: NOW)
    feed(batched, changes)
    together = snapshot(sessions)

    with sessions.begin() as session:
        for table in (CallbackDelivery, StatusHistory, Notification):
            session.query(table).delete()
    single = StatusRecorder(sessions, clock=lambda: NOW)
    for item in changes:
        feed(single, [item])
    assert snapshot(sessions) == together


def test_the_latest_status_rules_out_of_order_and_redeliveries_change_nothing(sessions):
    nid = str(uuid.uuid4())
    recorded: list[int] = []
    recorder = StatusRecorder(sessions, on_recorded=recorded.append, clock=lambda: NOW)
    feed(recorder, stream(nid))
    first = snapshot(sessions)
    status, status_at, channel, rule, first_at, scheduled_for, *_ = first["notifications"][nid]
    assert (status, status_at, channel) == ("failed", T0 + timedelta(minutes=4), "email")
    assert (rule, first_at, scheduled_for) == ("r", T0, T0 + timedelta(days=3))
    assert len(first["history"]) == 5
    assert len(first["callbacks"]) == 5

    later = StatusRecorder(
        sessions, on_recorded=recorded.append, clock=lambda: NOW + timedelta(days=1)
    )
    feed(later, stream(nid))
    assert snapshot(sessions) == first
    assert recorded == [5, 0]


def test_only_agencies_with_an_active_callback_get_changes_queued(sessions):
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    feed(StatusRecorder(sessions), stream(mine) + stream(theirs, source="quiet"))
    queued = snapshot(sessions)["callbacks"]
    assert {(agency, nid) for agency, nid, _ in queued} == {("subscribed", mine)}
    assert all(theirs not in body for _, _, body in queued)


def decision(event_id: str, minutes: int, rule: str) -> DecisionIn:
    ref = EventRef(source="subscribed/x", id=event_id, type="t", subject="s")
    rules = [RuleDecision(rule=rule, version=1, role="trigger", matched=True)]
    return DecisionIn(event=ref, at=T0 + timedelta(minutes=minutes), rules=rules)


def test_decisions_keep_the_latest_trace_within_and_across_batches(sessions):
    recorder = DecisionRecorder(sessions, clock=lambda: NOW)
    feed(recorder, [decision("a", 1, "old"), decision("a", 2, "new"), decision("b", 1, "b1")])
    feed(recorder, [decision("a", 0, "older"), decision("b", 3, "b3"), decision("c", 1, "c1")])
    with sessions() as session:
        stored = {
            row.event_id: (row.at, row.rules[0]["rule"])
            for row in session.scalars(select(Decision))
        }
    assert stored == {
        "a": (T0 + timedelta(minutes=2), "new"),
        "b": (T0 + timedelta(minutes=3), "b3"),
        "c": (T0 + timedelta(minutes=1), "c1"),
    }
