"""What the console's rule and template screens cost the rules API: the rules list with its
pending-reminder counts (one grouped query over the timers' (rule, subject, source, state)
index) as timers pile up, and the live preview of an unsaved template.

    .venv/bin/python -m bench.console_api [--rules 500] [--pending 100000] [--fired 100000]
        [--db sqlite,postgresql] [--runs 50]

For each database (a fresh SQLite file, or a fresh PostgreSQL database dropped at the end):
`--rules` rules, `--pending` pending timers spread over a tenth of them and `--fired` fired
ones (the index holds every state), then p50/p95 of `timers.pending_counts`, of
`GET /v1/rules` and of `POST /v1/templates/preview` through the app (TestClient: no socket).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update
from starlette.testclient import TestClient

from bench.seeding import migrate_rules, seed_timers
from common.db import make_engine, make_sessions
from services.rules import repository, timers
from services.rules.config import Settings
from services.rules.main import create_app
from services.rules.models import TimerRow

ADMIN = {"Authorization": "Bearer dev-admin-key"}
SMS = "Hola {{ citizen.name }}, tu permiso caduca el {{ data.expires_on | fecha }}. Renuévalo."
TEMPLATE: dict[str, Any] = {
    "id": "aviso",
    "locales": {
        "es": {"sms": SMS, "email_subject": "Caduca el {{ data.expires_on | fecha }}",
               "email_text": "Hola {{ citizen.name }}:\n\nRenuévalo en https://sede.dgt.es"},
        "en": {"sms": "Hi {{ citizen.name }}, it expires on {{ data.expires_on | fecha }}.",
               "email_subject": "It expires on {{ data.expires_on | fecha }}",
               "email_text": "Hi {{ citizen.name }},\n\nRenew it at https://sede.dgt.es"},
    },
}  # fmt: skip
EVENT = {
    "specversion": "1.0",
    "id": "bench-1",
    "source": "dgt",
    "type": "license.expiring",
    "subject": "license/B-1",
    "data": {
        "citizen": {"id": "ES-1", "name": "Ana", "phone": "+34600111222", "locale": "es"},
        "expires_on": "2027-01-15",
    },
}


def _rule(n: int) -> dict[str, Any]:
    return {"id": f"regla-{n:04d}", "on": "license.expiring", "channels": ["sms"],
            "template": "aviso", "enabled": True}  # fmt: skip


def _seed(database_url: str, rules: int, pending: int, fired: int) -> None:
    migrate_rules(database_url)
    settings = _settings(database_url)
    app = create_app(settings)
    with TestClient(app) as client:
        assert client.put("/v1/templates/aviso", json=TEMPLATE, headers=ADMIN).status_code == 200
    engine = make_engine(database_url)
    sessions = make_sessions(engine)
    now = datetime.now(UTC)
    with sessions.begin() as db:
        for n in range(rules):
            document = {**_rule(n), "critical": False}
            repository.save("rule", document["id"], document, actor="bench", now=now, session=db)
    busy = max(1, rules // 10)
    due = now + timedelta(days=30)
    for n in range(busy):
        seed_timers(database_url, (due for _ in range(pending // busy)), f"regla-{n:04d}")
        seed_timers(database_url, (due for _ in range(fired // busy)), f"regla-{n:04d}")
    with sessions.begin() as db:  # `fired` of the seeded timers have fired
        fired_ids = list(db.scalars(select(TimerRow.notification_id).limit(fired)))
        for start in range(0, len(fired_ids), 500):
            db.execute(
                update(TimerRow)
                .where(TimerRow.notification_id.in_(fired_ids[start : start + 500]))
                .values(state=timers.FIRED)
            )
    if engine.dialect.name == "postgresql":
        # What autovacuum does to a table this size soon after: statistics, and the visibility
        # map that lets the count read the index alone.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE rules_timers"))
    engine.dispose()


def _settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        env="development",
        admin_key=None,
        kafka_bootstrap="127.0.0.1:1",
        rules_consumer_enabled=False,
    )


def _timed(runs: int, call: Callable[[], object]) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


def measure(database_url: str, args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    _seed(database_url, args.rules, args.pending, args.fired)
    with TestClient(create_app(_settings(database_url))) as client:
        sessions = client.app.state.sessions  # type: ignore[attr-defined]

        def counts() -> None:
            with sessions() as db:
                timers.pending_counts(session=db)

        def listing() -> None:
            assert client.get("/v1/rules", headers=ADMIN).status_code == 200

        body = {"template": TEMPLATE, "event": EVENT}

        def preview() -> None:
            assert client.post("/v1/templates/preview", json=body, headers=ADMIN).status_code == 200

        return {
            "pending_counts": _timed(args.runs, counts),
            "GET /v1/rules": _timed(args.runs, listing),
            "POST /v1/templates/preview": _timed(args.runs, preview),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=500)
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--fired", type=int, default=100_000)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    for database in args.db.split(","):
        if database == "postgresql":
            from tests.conftest import create_postgres_database, drop_postgres_database

            url = create_postgres_database()
            try:
                figures = measure(url, args)
            finally:
                drop_postgres_database(url)
        else:
            url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
            figures = measure(url, args)
        print(f"{database}: {args.rules} rules, {args.pending} pending, {args.fired} fired timers")
        for name, (p50, p95) in figures.items():
            print(f"  {name:28} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")


if __name__ == "__main__":
    main()
