"""Each service's migrations build exactly the schema its models describe, on both databases,
and the events table's re-keying keeps every row on the way up and down."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, MetaData, inspect, text
from sqlalchemy.exc import IntegrityError

from common import db
from services.events import main as events_main

SERVICES = ("events", "rules", "notifier", "console")


def _metadata(service: str) -> MetaData:
    metadata: MetaData = importlib.import_module(f"services.{service}.models").Base.metadata
    return metadata


def _move_events(engine: Engine, revision: str, *, down: bool = False) -> None:
    """Upgrade (or downgrade) the events service's tables to `revision`."""
    with engine.begin() as connection:
        config = db.alembic_config(events_main.MIGRATIONS, events_main.VERSION_TABLE, connection)
        (command.downgrade if down else command.upgrade)(config, revision)


def _differences(engine: Engine, metadata: MetaData) -> list[Any]:
    """What autogenerate would change (types included), plus primary keys it does not
    compare, for the tables of `metadata` only."""
    own = set(metadata.tables)

    def include_name(name: str | None, kind: str, _parents: Any) -> bool:
        return kind != "table" or name in own

    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": include_name}
        )
        found: list[Any] = list(compare_metadata(context, metadata))
        inspector = inspect(connection)
        for name, table in metadata.tables.items():
            stored = inspector.get_pk_constraint(name)["constrained_columns"]
            wanted = [column.name for column in table.primary_key.columns]
            if stored != wanted:
                found.append(("primary key", name, stored, wanted))
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_the_migrations_build_what_the_models_describe(
    empty_database_url: str, service: str
) -> None:
    main = importlib.import_module(f"services.{service}.main")
    db.migrate(
        empty_database_url, script_location=main.MIGRATIONS, version_table=main.VERSION_TABLE
    )
    engine = db.make_engine(empty_database_url)
    try:
        assert _differences(engine, _metadata(service)) == []
    finally:
        engine.dispose()


def _insert_event(engine: Engine, source: str, event_id: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO events_events (source, id, type, subject, payload_hash, payload,"
                " state, received_at) VALUES (:source, :id, 't', 's', 'h', '{}', 'accepted',"
                " '2026-11-30 10:00:00.000000')"
            ),
            {"source": source, "id": event_id},
        )


def _events(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT source, id FROM events_events ORDER BY source, id"))
        return [(source, event_id) for source, event_id in rows]


def _indexes(engine: Engine) -> set[str]:
    return {str(index["name"]) for index in inspect(engine).get_indexes("events_events")}


def test_events_are_rekeyed_by_id_and_back_without_losing_a_row(empty_database_url: str) -> None:
    engine = db.make_engine(empty_database_url)
    try:
        _move_events(engine, "0004")
        before = [("dmv", "a-1"), ("dmv", "b-2"), ("tax", "a-1")]
        for source, event_id in before:
            _insert_event(engine, source, event_id)
        assert "ix_events_events_id" in _indexes(engine)

        _move_events(engine, "0005")

        assert _events(engine) == before
        assert inspect(engine).get_pk_constraint("events_events")["constrained_columns"] == [
            "id",
            "source",
        ]
        assert "ix_events_events_id" not in _indexes(engine)
        with pytest.raises(IntegrityError):
            _insert_event(engine, "tax", "a-1")  # the key is still (source, id)
        _insert_event(engine, "edu", "a-1")

        _move_events(engine, "0004", down=True)

        assert _events(engine) == sorted([*before, ("edu", "a-1")])
        assert inspect(engine).get_pk_constraint("events_events")["constrained_columns"] == [
            "source",
            "id",
        ]
        assert "ix_events_events_id" in _indexes(engine)
    finally:
        engine.dispose()


def test_a_lookup_by_id_alone_uses_the_primary_key_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'avisa.db'}"
    db.migrate(url, script_location=events_main.MIGRATIONS, version_table=events_main.VERSION_TABLE)
    engine = db.make_engine(url)
    try:
        with engine.connect() as connection:
            plan = " ".join(
                str(row[-1])
                for row in connection.execute(
                    text("EXPLAIN QUERY PLAN SELECT * FROM events_events WHERE id = 'x'")
                )
            )
    finally:
        engine.dispose()
    assert "USING INDEX sqlite_autoindex_events_events_1 (id=?)" in plan
