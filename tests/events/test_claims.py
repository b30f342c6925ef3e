"""The claim's driver-level statements and its insert-first path, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from common import db
from schemas.events import CloudEvent
from services.events import flows
from services.events.errors import PayloadConflict
from services.events.flows import Incoming, Stored
from services.events.intake import claims, dialect_sql
from services.events.intake.batcher import Ingestor
from services.events.intake.claims import Claim, Ticket
from services.events.main import migrate
from services.events.models import Event
from tests.events.conftest import make_event, make_settings
from tests.events.rows import add_pending
from tests.events.test_ingest import FakePublisher

NOW = datetime(2026, 11, 30, 6, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def sessions(database_url):
    migrate(make_settings("127.0.0.1:1", "x.", database_url))
    engine = db.make_engine(database_url)
    yield db.make_sessions(engine)
    engine.dispose()


def ev(**overrides) -> CloudEvent:
    return CloudEvent.model_validate(make_event(**overrides))


def item(event: CloudEvent, at: datetime = NOW) -> Incoming:
    return claims.incoming(event, at)


def ticket(*events: CloudEvent, at: datetime = NOW) -> Ticket:
    return Ticket([item(event, at) for event in events], at, deadline=1e18)


def rows(sessions) -> dict[str, Event]:
    with sessions() as session:
        return {row.id: row for row in session.scalars(select(Event))}


def claim(sessions, *tickets: Ticket, stale_before: datetime = NOW - timedelta(minutes=1)) -> Claim:
    with sessions() as session:
        result = claims.claim(
            session=session, tickets=tickets, topic="t", daily_cap=None, stale_before=stale_before
        )
        session.commit()
    return result


def stored(sessions, event: CloudEvent, *, state: str, at: datetime = NOW) -> None:
    with sessions.begin() as session:
        dialect_sql.insert_pending(session=session, groups=[(at, [item(event, at)])])
        if state == "accepted":
            dialect_sql.mark_accepted(session=session, keys=[flows.key_of(event)])


# --- the statements ---------------------------------------------------------------------------


def test_inserted_rows_read_back_as_the_orm_wrote_them(sessions):
    timeless = ev(id="s-1")
    data = make_event()["data"]
    data["citizen"]["name"] = 'Ñandú "q" \\ {} \u2028'
    timed = ev(id="s-2", source="demo/branch", time="2026-11-29T10:00:00Z", data=data)
    items = [item(timeless), item(timed)]

    with sessions.begin() as session:
        inserted = dialect_sql.insert_pending(session=session, groups=[(NOW, items)])

    assert inserted == {("demo", "s-1"), ("demo/branch", "s-2")}
    found = rows(sessions)
    for incoming in items:
        row = found[incoming.event.id]
        assert (row.source, row.type, row.subject) == (
            incoming.event.source,
            incoming.event.type,
            incoming.event.subject,
        )
        assert row.payload_hash == incoming.payload_hash
        assert row.payload == incoming.wire  # the wire form, `time` defaulted to receipt
        assert (row.state, row.received_at, row.purged_at) == ("pending", NOW, None)
    assert found["s-1"].payload["time"] == "2026-11-30T06:00:00.123456Z"


def test_an_existing_key_is_skipped_and_left_as_it_was(sessions):
    first = ev(id="s-3")
    stored(sessions, first, state="accepted")
    other = ev(id="s-3", subject="license/other")

    with sessions.begin() as session:
        inserted = dialect_sql.insert_pending(
            session=session,
            groups=[(NOW + timedelta(seconds=1), [item(other), item(ev(id="s-4"))])],
        )

    assert inserted == {("demo", "s-4")}
    row = rows(sessions)["s-3"]
    assert (row.subject, row.state, row.received_at) == (first.subject, "accepted", NOW)


def test_lookups_and_acceptance_cover_many_sources_and_statements(sessions):
    events = [ev(id=f"m-{i}", source=f"demo/s{i % 3}") for i in range(1_201)]  # > 2 chunks
    keys = [flows.key_of(event) for event in events]

    with sessions.begin() as session:
        inserted = dialect_sql.insert_pending(
            session=session, groups=[(NOW, [item(e) for e in events[:700]]), (NOW, [])]
        )
        inserted |= dialect_sql.insert_pending(
            session=session, groups=[(NOW, [item(e) for e in events[700:]])]
        )
        dialect_sql.mark_accepted(session=session, keys=keys[::2])
    with sessions() as session:
        found = dialect_sql.stored_events(session=session, keys=[*keys, ("demo", "absent")])

    assert inserted == set(keys)
    assert len(found) == 1_201
    assert found[keys[0]] == Stored(item(events[0]).payload_hash, "accepted")
    assert found[keys[1]].state == "pending"
    assert {e.state for e in rows(sessions).values()} == {"accepted", "pending"}
    assert sum(e.state == "accepted" for e in rows(sessions).values()) == 601


def test_nothing_to_do_runs_no_statement(sessions):
    with sessions.begin() as session:
        assert dialect_sql.insert_pending(session=session, groups=[]) == set()
        assert dialect_sql.stored_events(session=session, keys=[]) == {}
        dialect_sql.mark_accepted(session=session, keys=[])


# --- the claim: fresh requests insert first, the others are planned against the table ---------


def test_fresh_requests_are_claimed_whole_with_their_messages(sessions):
    a, b = ticket(ev(id="f-1"), ev(id="f-2")), ticket(ev(id="f-3"))

    result = claim(sessions, a, b)

    assert result.publish == [a, b]
    assert [len(t.messages) for t in (a, b)] == [2, 1]
    assert a.messages[0].value == a.incoming[0].value
    assert {e.state for e in rows(sessions).values()} == {"pending"}


def test_a_stored_duplicate_in_a_fresh_request_is_counted_and_its_new_event_kept(sessions):
    known = ev(id="d-1")
    stored(sessions, known, state="accepted")
    mixed, plain = ticket(known, ev(id="d-2")), ticket(ev(id="d-3"))

    result = claim(sessions, mixed, plain)

    assert result.publish == [mixed, plain]
    assert (len(mixed.new), mixed.duplicates) == (1, 1)
    assert [m.value for m in mixed.messages] == [mixed.incoming[1].value]
    assert set(rows(sessions)) == {"d-1", "d-2", "d-3"}


def test_a_reused_id_fails_only_its_request_and_leaves_none_of_its_rows(sessions):
    stored(sessions, ev(id="c-1"), state="accepted")
    conflicting, other = (
        ticket(ev(id="c-2"), ev(id="c-1", subject="license/x")),
        ticket(ev(id="c-3")),
    )

    result = claim(sessions, conflicting, other)

    assert result.publish == [other]
    assert [(t, type(e)) for t, e in result.failed] == [(conflicting, PayloadConflict)]
    assert set(rows(sessions)) == {"c-1", "c-3"}


def test_a_key_pending_elsewhere_makes_its_request_wait_without_rows(sessions):
    elsewhere = ev(id="w-1")
    stored(sessions, elsewhere, state="pending")
    waiting, other = ticket(ev(id="w-2"), elsewhere), ticket(ev(id="w-3"))

    result = claim(sessions, waiting, other)

    assert (result.publish, result.waiting) == ([other], [waiting])
    assert set(rows(sessions)) == {"w-1", "w-3"}


def test_a_stale_pending_row_is_taken_over_on_the_next_claim(sessions):
    stale = ev(id="p-1")
    stored(sessions, stale, state="pending", at=NOW - timedelta(minutes=5))
    first = ticket(stale)

    assert claim(sessions, first).waiting == [first]  # its stale row is forgotten meanwhile
    again = ticket(stale)
    assert claim(sessions, again).publish == [again]
    assert rows(sessions)["p-1"].received_at == NOW


def test_repeats_within_a_group_are_planned_and_published_once(sessions):
    event = ev(id="r-1")
    twice = ev(id="r-2")
    one, repeat, inner = ticket(event), ticket(event), ticket(twice, twice)
    fresh = ticket(ev(id="r-3"))

    result = claim(sessions, one, repeat, inner, fresh)

    assert result.publish == [one, inner, fresh]  # arrival order, fresh or not
    assert result.waiting == [repeat]  # until the first is settled: then a duplicate
    assert (inner.duplicates, len(inner.messages)) == (1, 1)
    assert set(rows(sessions)) == {"r-1", "r-2", "r-3"}


def test_an_empty_request_is_answered_without_publishing(sessions):
    empty, fresh = Ticket([], NOW, deadline=1e18), ticket(ev(id="e-1"))

    result = claim(sessions, empty, fresh)

    assert (result.answered, result.publish) == ([empty], [fresh])
    assert (empty.new, empty.duplicates, empty.messages) == ([], 0, [])


# --- concurrency: two claimers, one key ---------------------------------------------------


def test_a_racer_blocked_on_the_same_key_waits_and_inserts_nothing(sessions):
    shared = ev(id="x-1")
    first_session = sessions()
    first = claims.claim(
        session=first_session,
        tickets=[ticket(ev(id="x-0"), shared)],
        topic="t",
        daily_cap=None,
        stale_before=NOW - timedelta(minutes=1),
    )
    racer = ticket(shared, ev(id="x-2"))
    results: list[Claim] = []
    thread = threading.Thread(target=lambda: results.append(claim(sessions, racer)))
    thread.start()
    thread.join(0.5)  # blocked on the first claim's uncommitted row (or SQLite's write lock)
    first_session.commit()
    first_session.close()
    thread.join(30)

    assert len(first.publish) == 1
    assert results[0].waiting == [racer] and not results[0].publish
    assert set(rows(sessions)) == {"x-0", "x-1"}


def test_two_ingestors_accepting_the_same_events_publish_each_once(sessions):
    publishers = [FakePublisher(), FakePublisher()]
    ingestors = [
        Ingestor(
            sessions=sessions,
            producer=publisher,
            topic="t",
            wait_s=10.0,
            stale_s=60.0,
            retry_after_s=5,
        )
        for publisher in publishers
    ]
    events = [ev(id=f"k-{i}") for i in range(120)]
    futures = [
        accepting.submit(events[start : start + size])
        for start, size in ((0, 1), (1, 7), (8, 40), (48, 72))
        for accepting in ingestors
    ]
    futures += [accepting.submit([event]) for event in events[::5] for accepting in ingestors]

    outcomes = [future.result(timeout=60) for future in futures]
    for accepting in ingestors:
        accepting.close()

    published = [json.loads(m.value)["id"] for p in publishers for m in p.published]
    assert sorted(published) == sorted(e.id for e in events)  # each exactly once
    assert sum(o.accepted for o in outcomes) == 120
    assert sum(o.accepted + o.duplicates for o in outcomes) == 2 * (120 + 24)
    assert {e.state for e in rows(sessions).values()} == {"accepted"}
    assert len(rows(sessions)) == 120


def test_a_pending_row_added_through_the_orm_is_seen_by_the_lookup(sessions):
    event = ev(id="o-1")
    with sessions.begin() as session:
        add_pending(session=session, items=[item(event)], now=NOW)
    with sessions() as session:
        found = dialect_sql.stored_events(session=session, keys=[flows.key_of(event)])
    assert found == {flows.key_of(event): Stored(item(event).payload_hash, "pending")}
