"""SQLite engines get their pragmas on every connection; the page size only on a new file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import text

from common.db import make_engine


def pragma(engine_url: str, name: str) -> object:
    engine = make_engine(engine_url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(f"PRAGMA {name}")).scalar()
    finally:
        engine.dispose()


def test_a_new_sqlite_file_gets_wal_small_pages_and_a_large_cache(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'avisa.db'}"
    assert pragma(url, "journal_mode") == "wal"
    assert pragma(url, "page_size") == 4096
    assert pragma(url, "cache_size") == -32768
    assert pragma(url, "synchronous") == 1  # NORMAL
    assert pragma(url, "wal_autocheckpoint") == 10240  # 40 MB of WAL
    assert pragma(url, "foreign_keys") == 1
    assert pragma(url, "temp_store") == 2  # MEMORY: statement journals never become files


def test_an_existing_file_keeps_its_page_size_and_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.execute("PRAGMA page_size=16384")  # what earlier versions made
        old.execute("CREATE TABLE t (x)")
        old.execute("INSERT INTO t VALUES (1)")
    url = f"sqlite:///{path}"
    assert pragma(url, "page_size") == 16384
    assert pragma(url, "wal_autocheckpoint") == 2560  # 40 MB of WAL, as with 4 KB pages
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT x FROM t")).scalar() == 1
    finally:
        engine.dispose()


def test_a_sqlite_thread_gets_back_the_connection_it_returned_last(tmp_path: Path) -> None:
    # The connection just used has a valid page cache; the pool's oldest would reread pages.
    engine = make_engine(f"sqlite:///{tmp_path / 'avisa.db'}")
    try:
        first, second = engine.connect(), engine.connect()
        first_dbapi = first.connection.dbapi_connection
        second_dbapi = second.connection.dbapi_connection
        assert first_dbapi is not second_dbapi
        first.close()
        second.close()  # returned last
        with engine.connect() as again:
            assert again.connection.dbapi_connection is second_dbapi
    finally:
        engine.dispose()
