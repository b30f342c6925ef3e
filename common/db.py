"""Database access: engines for SQLite and PostgreSQL, sessions, and locked Alembic upgrades."""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

_WAL_CHECKPOINT_BYTES = 40 * 1024 * 1024
_MIGRATION_LOCK_ID = 0x41564953  # "AVIS": one advisory lock for every service's upgrades


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # SQLite's default 4 KB pages: an insert of a random key dirties one index leaf of each
    # index, and a commit writes (and checksums) every dirty page whole. Once a table holds
    # more leaves than a commit has rows, 16 KB pages wrote 16 KB for each such leaf
    # (docs/benchmarks.md, "Seventh round"). A 32 MB cache (default 2 MB) holds more of the
    # indexes. The page size takes effect only on a new file (set before WAL).
    cursor.execute("PRAGMA page_size=4096")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA cache_size=-32768")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Checkpoint once the WAL holds 40 MB (10,240 pages of 4 KB) instead of 1,000 pages:
    # every insert of a random key dirties index leaves all over the file, so at the default
    # a busy intake's commits started a checkpoint (a write back of those pages, and two
    # fsyncs) every group or two; a page changed by many commits is now written back once.
    page_size = cursor.execute("PRAGMA page_size").fetchone()[0]
    cursor.execute(f"PRAGMA wal_autocheckpoint={_WAL_CHECKPOINT_BYTES // int(page_size)}")
    # A write that is not its transaction's first keeps a statement journal of the pages it
    # changes; past 64 KB SQLite spills it to a new temporary file, and with 16 KB pages the
    # intake's claim did for every group: a file created, written and deleted each time.
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and its folder created."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Last in, first out: a thread that commits often gets back the connection it just
        # used, whose page cache is still valid. Handed the pool's oldest connection instead,
        # it finds the file changed since that connection's last transaction (by its own
        # previous commit, on another connection), and SQLite rereads every page it needs.
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_use_lifo=True,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def is_postgresql(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def database_reachable(engine: Engine) -> bool:
    """True when a trivial query succeeds."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialize upgrades across processes: advisory lock on PostgreSQL, file lock on SQLite."""
    if is_postgresql(engine):
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
            try:
                yield
            finally:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID}
                )
                connection.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def alembic_config(script_location: Path, version_table: str, connection: Connection) -> Config:
    """The Alembic configuration of one service's migrations, run on `connection`."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["version_table"] = version_table
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, *, script_location: Path, version_table: str) -> None:
    """Apply pending Alembic migrations of one service, safely when replicas start together."""
    with _migration_lock(engine), engine.begin() as connection:
        command.upgrade(alembic_config(script_location, version_table, connection), "head")
    log.info("database migrated", extra={"version_table": version_table})


def migrate(database_url: str, *, script_location: Path, version_table: str) -> None:
    """Apply one service's pending migrations on a short-lived engine of its own."""
    engine = make_engine(database_url)
    try:
        upgrade(engine, script_location=script_location, version_table=version_table)
    finally:
        engine.dispose()


def run_migrations_online(context: Any) -> None:
    """The body of every service's `migrations/env.py`: migrate on the connection given."""
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        version_table=context.config.attributes["version_table"],
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
