"""What the intake's claim transaction costs a request on SQLite, by group and page size.

    .venv/bin/python -m bench.ingest_claims --rows 100000 --groups 26 200 500

For each page size, a new SQLite file (WAL, the service's other pragmas) is filled with
`--rows` events, then the claim thread's transaction runs in this process, without threads,
broker or HTTP: settle the previous group (`accepted`), claim a new group of single-event
requests (insert `pending`, count the daily cap), commit. It prints the median CPU a group
and a request. Groups of a few dozen are what 64 single POSTs in flight make; the events
table of a running service holds far more rows than the ingest bench's fresh file, and which
page size is cheaper depends on both.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bench.__main__ import results_path
from bench.ingest_load import make_event
from common import db
from schemas.events import CloudEvent
from services.events.intake import claims
from services.events.intake.claims import Ticket
from services.events.limits import DailyCap, Limits, LimitsLookup
from services.events.main import MIGRATIONS, VERSION_TABLE

_FILL = 500  # requests a group while filling


class Claims:
    """A migrated SQLite file of one page size and the claim transaction over it."""

    def __init__(self, folder: Path, page_size: int) -> None:
        path = folder / f"events-{page_size}.db"
        with sqlite3.connect(path) as new:  # the page size holds only if set before WAL
            new.execute(f"PRAGMA page_size={page_size}")
            new.execute("PRAGMA journal_mode=WAL")
        url = f"sqlite:///{path}"
        db.migrate(url, script_location=MIGRATIONS, version_table=VERSION_TABLE)
        self.engine = db.make_engine(url)
        self.sessions: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        limits = LimitsLookup(self.sessions, defaults=Limits(10**9, 10**12), ttl_s=3600)
        self.cap = DailyCap(limits)
        self.made = 0
        self.previous: list[Ticket] = []

    def tickets(self, count: int) -> list[Ticket]:
        now = datetime.now(UTC)
        made = []
        for _ in range(count):
            self.made += 1
            event = CloudEvent.model_validate(make_event(self.made))
            made.append(Ticket([claims.incoming(event, now)], now, time.monotonic() + 60))
        return made

    def step(self, group: list[Ticket]) -> float:
        """Settle the previous group and claim `group` in one transaction; CPU seconds."""
        started = time.process_time()
        with self.sessions() as session:
            claims.settle(session=session, acknowledged=self.previous, refused=[], daily_cap=None)
            claims.claim(
                session=session,
                tickets=group,
                topic="bench",
                daily_cap=self.cap,
                stale_before=datetime.now(UTC) - timedelta(seconds=60),
            )
            session.commit()
        self.previous = group
        return time.process_time() - started


def measure(folder: Path, page_size: int, rows: int, groups: list[int], reps: int) -> list[Any]:
    claim = Claims(folder, page_size)
    try:
        while claim.made < rows:
            claim.step(claim.tickets(min(_FILL, rows - claim.made)))
        found = []
        for size in groups:
            spent = statistics.median(claim.step(claim.tickets(size)) for _ in range(reps))
            found.append({"page_size": page_size, "rows": rows, "group": size, "cpu_s": spent})
            print(
                f"page {page_size:>5}  rows {rows:>7}  group {size:>4}: {spent * 1e6:8.0f} µs"
                f" a group, {spent / size * 1e6:6.1f} µs a request"
            )
        return found
    finally:
        claim.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="events stored first")
    parser.add_argument("--groups", type=int, nargs="+", default=[26, 200, 500])
    parser.add_argument("--page-sizes", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--reps", type=int, default=40, help="transactions a group size")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="avisa-claims-") as folder:
        for page_size in args.page_sizes:
            results += measure(Path(folder), page_size, args.rows, args.groups, args.reps)
    out = results_path("ingest-claims", "json")
    out.write_text(json.dumps(results, indent=2))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
