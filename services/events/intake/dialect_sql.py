"""The intake's hot statements on the events table, written for each database's driver.

SQLAlchemy's executemany of a many-row `INSERT … RETURNING` processes every parameter of
every row in Python (the JSON column serializes the payload again, the time column formats
each row's time); at thousands of events a second that cost more than the database's own
work. Here a claim's rows go out as one statement with parameters already in the driver's
form: the payload as the canonical JSON text the intake made anyway, the time formatted once
a request by the column type's own processor. The statements still run through
`Connection.exec_driver_sql`, in the session's transaction, so errors are wrapped and broken
connections invalidated as for any other statement.

SQLite gets multi-row `VALUES` lists (`source = ? AND id IN (…)` for lookups, which uses the
primary key); PostgreSQL gets one fixed statement over `unnest` of arrays, which psycopg
prepares once, with the arrays sent in binary (`%b`): in text form psycopg escapes every quote
of every payload, which cost more than the rest of the claim.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from functools import cache
from itertools import chain
from typing import Any, Protocol, cast

from sqlalchemy import Connection, Dialect, Table
from sqlalchemy.orm import Session

from common.fastjson import canonical_json
from services.events.flows import EventKey, Incoming, Stored
from services.events.models import Event

_EVENTS = cast(Table, Event.__table__)  # the statements spell out its name, columns and states
_CHUNK = 500  # rows (or ids) a SQLite statement: 3,500 parameters, far below its limit

Row = tuple[str, str, str, str, str, str, Any]
"""source, id, type, subject, payload_hash, payload (JSON text), received_at (bound form)."""

Group = tuple[datetime, Sequence[Incoming]]
"""The events of one request and the time it was received."""


class _Statements(Protocol):
    def insert(self, connection: Connection, rows: list[Row]) -> set[EventKey]: ...

    def stored(self, connection: Connection, keys: list[EventKey]) -> dict[EventKey, Stored]: ...

    def accept(self, connection: Connection, keys: list[EventKey]) -> None: ...


def insert_pending(*, session: Session, groups: Iterable[Group]) -> set[EventKey]:
    """Insert the events of `groups` as `pending`, skipping keys that already exist (no
    exception for a racer's key); returns the keys inserted."""
    connection = session.connection()
    rows = _rows(groups, _time_processor(connection.dialect))
    if not rows:
        return set()
    return _statements(connection.dialect.name).insert(connection, rows)


def stored_events(*, session: Session, keys: Iterable[EventKey]) -> dict[EventKey, Stored]:
    """What the table holds for `keys` (absent keys are left out)."""
    wanted = list(set(keys))
    if not wanted:
        return {}
    connection = session.connection()
    return _statements(connection.dialect.name).stored(connection, wanted)


def mark_accepted(*, session: Session, keys: Sequence[EventKey]) -> None:
    """Set the events of `keys` `accepted`."""
    if not keys:
        return
    connection = session.connection()
    _statements(connection.dialect.name).accept(connection, list(keys))


def payload_text(item: Incoming) -> str:
    """The JSON text stored as the event's payload: its canonical JSON (ASCII)."""
    value = item.value
    if value is None:
        value = canonical_json(item.wire if item.wire is not None else item.event.to_wire())
    return value.decode("ascii")


def _rows(groups: Iterable[Group], bind_time: Callable[[datetime], Any]) -> list[Row]:
    rows: list[Row] = []
    for received_at, items in groups:
        at = bind_time(received_at)  # once a request: every event of it shares the time
        for item in items:
            event = item.event
            source, event_id = item.key
            rows.append(
                (
                    source,
                    event_id,
                    event.type,
                    event.subject,
                    item.payload_hash,
                    payload_text(item),
                    at,
                )
            )
    return rows


@cache
def _time_processor(dialect: Dialect) -> Callable[[datetime], Any]:
    """`received_at` as the column type itself binds it (UTC; SQLite: its text form)."""
    processor = _EVENTS.c.received_at.type.bind_processor(dialect)
    if processor is None:  # pragma: no cover - UtcDateTime always processes
        return lambda value: value
    return cast(Callable[[datetime], Any], processor)


def _statements(dialect_name: str) -> _Statements:
    if dialect_name == "postgresql":
        return _POSTGRESQL
    if dialect_name == "sqlite":
        return _SQLITE
    raise NotImplementedError(f"no intake statements for {dialect_name}")


def _by_source(keys: Iterable[EventKey]) -> Iterable[tuple[str, list[str]]]:
    """(source, ids) with at most `_CHUNK` ids each."""
    ids: dict[str, list[str]] = {}
    for source, event_id in keys:
        ids.setdefault(source, []).append(event_id)
    for source, wanted in ids.items():
        for start in range(0, len(wanted), _CHUNK):
            yield source, wanted[start : start + _CHUNK]


class _Sqlite:
    """Multi-row statements; their texts are kept by row count, so sqlite3 reuses its own
    prepared statements (group sizes repeat). Only `?` placeholders are joined into them."""

    @staticmethod
    @cache
    def _insert_sql(count: int) -> str:
        values = ",".join(["(?,?,?,?,?,?,'pending',?)"] * count)
        return (
            "INSERT INTO events_events"  # noqa: S608 - placeholders only
            " (source, id, type, subject, payload_hash, payload, state, received_at)"
            f" VALUES {values} ON CONFLICT (source, id) DO NOTHING RETURNING source, id"
        )

    @staticmethod
    @cache
    def _stored_sql(count: int) -> str:
        marks = ",".join("?" * count)
        return (
            "SELECT source, id, payload_hash, state FROM events_events"  # noqa: S608
            f" WHERE source = ? AND id IN ({marks})"
        )

    @staticmethod
    @cache
    def _accept_sql(count: int) -> str:
        marks = ",".join("?" * count)
        return (
            "UPDATE events_events SET state = 'accepted'"  # noqa: S608
            f" WHERE source = ? AND id IN ({marks})"
        )

    def insert(self, connection: Connection, rows: list[Row]) -> set[EventKey]:
        inserted: set[EventKey] = set()
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            params = tuple(chain.from_iterable(chunk))
            result = connection.exec_driver_sql(self._insert_sql(len(chunk)), params)
            inserted.update((source, event_id) for source, event_id in result)
        return inserted

    def stored(self, connection: Connection, keys: list[EventKey]) -> dict[EventKey, Stored]:
        found: dict[EventKey, Stored] = {}
        for source, ids in _by_source(keys):
            result = connection.exec_driver_sql(self._stored_sql(len(ids)), (source, *ids))
            for row_source, event_id, payload_hash, state in result:
                found[row_source, event_id] = Stored(payload_hash, state)
        return found

    def accept(self, connection: Connection, keys: list[EventKey]) -> None:
        for source, ids in _by_source(keys):
            connection.exec_driver_sql(self._accept_sql(len(ids)), (source, *ids))


class _Postgresql:
    """One fixed statement each, over `unnest` of arrays (psycopg prepares it after a few
    runs; the arrays go out in one parameter each, whatever the number of rows). Rows are
    inserted in key order, so two replicas inserting the same keys lock them in the same
    order and cannot deadlock."""

    _INSERT = (
        "INSERT INTO events_events"
        " (source, id, type, subject, payload_hash, payload, state, received_at)"
        " SELECT s, i, t, j, h, p::jsonb, 'pending', r FROM unnest(%b::text[], %b::text[],"
        " %b::text[], %b::text[], %b::text[], %b::text[], %b::timestamptz[])"
        " AS u(s, i, t, j, h, p, r) ORDER BY s, i"
        " ON CONFLICT (source, id) DO NOTHING RETURNING source, id"
    )
    _STORED = (
        "SELECT e.source, e.id, e.payload_hash, e.state FROM events_events AS e"
        " JOIN unnest(%b::text[], %b::text[]) AS k(s, i) ON e.source = k.s AND e.id = k.i"
    )
    _ACCEPT = (
        "UPDATE events_events AS e SET state = 'accepted'"
        " FROM unnest(%b::text[], %b::text[]) AS k(s, i) WHERE e.source = k.s AND e.id = k.i"
    )

    def insert(self, connection: Connection, rows: list[Row]) -> set[EventKey]:
        columns = tuple(list(column) for column in zip(*rows, strict=True))
        result = connection.exec_driver_sql(self._INSERT, columns)
        return {(source, event_id) for source, event_id in result}

    def stored(self, connection: Connection, keys: list[EventKey]) -> dict[EventKey, Stored]:
        sources, ids = (list(column) for column in zip(*keys, strict=True))
        result = connection.exec_driver_sql(self._STORED, (sources, ids))
        return {(s, i): Stored(payload_hash, state) for s, i, payload_hash, state in result}

    def accept(self, connection: Connection, keys: list[EventKey]) -> None:
        sources, ids = (list(column) for column in zip(*keys, strict=True))
        connection.exec_driver_sql(self._ACCEPT, (sources, ids))


_SQLITE = _Sqlite()
_POSTGRESQL = _Postgresql()
