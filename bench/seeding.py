"""Timers written straight into the rules service's table, for the end-to-end reminder runs:
far-future *pending* timers (what the scheduler must not look at) and, optionally, the burst
itself. PostgreSQL gets COPY (a million rows in well under a minute of CPU); SQLite gets
multi-row inserts. Rows look like `timers.timer_row` makes them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from common.db import make_engine, migrate
from schemas.notifications import NotificationRequest
from services.rules import timers
from services.rules.main import MIGRATIONS, VERSION_TABLE
from services.rules.models import TimerRow

COLUMNS = (
    "notification_id",
    "due_at",
    "state",
    "rule_id",
    "rule_version",
    "subject",
    "source",
    "event_id",
    "event_time",
    "step",
    "payload",
    "created_at",
    "updated_at",
)
CHUNK = 20_000  # rows per transaction: the earliest timers become visible first


def migrate_rules(database_url: str) -> None:
    """The rules service's tables, before its processes start (they find them migrated)."""
    migrate(database_url, script_location=MIGRATIONS, version_table=VERSION_TABLE)


def _template(rule_id: str) -> dict[str, Any]:
    request = NotificationRequest.model_validate(
        {
            "id": str(uuid.uuid4()),
            "event": {"source": "demo", "id": "e", "type": "bench.seeded", "subject": "s"},
            "rule": {"id": rule_id, "version": 1},
            "citizen": {"id": "S", "name": "Ana", "phone": "+34600000000", "locale": "es"},
            "channels": ["sms"],
            "content": {"sms": {"body": "Hola Ana, tu plazo vence pronto."}},
            "locale": "es",
            "scheduled_for": datetime.now(UTC),
            "step": "-PT10M",
        }
    )
    return request.model_dump(mode="json")


def timer_rows(dues: Iterable[datetime], rule_id: str) -> Iterator[tuple[Any, ...]]:
    """One row (in `COLUMNS` order, payload as JSON text) per due time; citizens distinct so
    the messages' keys spread over the partitions."""
    template, now, run = _template(rule_id), datetime.now(UTC), uuid.uuid4().hex[:8]
    for n, due in enumerate(dues):
        nid = str(uuid.uuid4())
        event = {**template["event"], "id": f"{run}-{n}", "subject": f"plazo/{run}-{n}"}
        citizen = {**template["citizen"], "id": f"S-{run}-{n}", "phone": f"+3462{n % 10**7:07d}"}
        payload = {
            **template,
            "id": nid,
            "event": event,
            "citizen": citizen,
            "scheduled_for": due.isoformat(),
        }
        yield (
            nid,
            due,
            timers.PENDING,
            rule_id,
            1,
            event["subject"],
            "demo",
            event["id"],
            now,
            "-PT10M",
            json.dumps(payload),
            now,
            now,
        )


def seed_timers(database_url: str, dues: Iterable[datetime], rule_id: str) -> int:
    """Store a pending timer per due time (in that order, `CHUNK` per transaction)."""
    rows = timer_rows(dues, rule_id)
    if make_url(database_url).get_backend_name() == "postgresql":
        return _copy(database_url, rows)
    return _insert(database_url, rows)


def _chunks(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _copy(database_url: str, rows: Iterator[tuple[Any, ...]]) -> int:
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    statement = f"COPY {TimerRow.__tablename__} ({', '.join(COLUMNS)}) FROM STDIN"
    count = 0
    with psycopg.connect(dsn) as connection:
        for chunk in _chunks(rows):
            with connection.cursor() as cursor, cursor.copy(statement) as copy:
                for row in chunk:
                    copy.write_row(row)
            connection.commit()
            count += len(chunk)
        # Fresh statistics, as autovacuum would give a table this size in production.
        connection.execute(f"ANALYZE {TimerRow.__tablename__}")
        connection.commit()
    return count


def _insert(database_url: str, rows: Iterator[tuple[Any, ...]]) -> int:
    engine = make_engine(database_url)
    count = 0
    try:
        for chunk in _chunks(rows):
            values = [dict(zip(COLUMNS, row, strict=True)) for row in chunk]
            for value in values:
                value["payload"] = json.loads(value["payload"])
            with engine.begin() as connection:
                connection.execute(insert(TimerRow), values)
            count += len(chunk)
    finally:
        engine.dispose()
    return count
