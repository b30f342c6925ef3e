"""Rules-service figures: timers inserted/s, fired/s and lateness as pending timers grow.

Also events/s evaluated against 200 rules (pure matching + rendering).

    .venv/bin/python -m bench.rules_timers [--pending 10000,100000,1000000] [--burst 10000]
        [--rate 10000] [--steady-s 3] [--batch 500] [--schedulers 1 | --scheduler-processes 2]
        [--db sqlite,postgresql] [--events 2000]

For each database and each pending level (the table grows from one level to the next; the
pending timers are due in 30 days, so they are what the scheduler must *not* look at):
- inserted/s: the bench fills the table with bulk inserts (reported), then measures the
  service's own path (`timers.add_absent`, 2,000 timers per transaction) on 10,000 timers;
- burst: `--burst` timers due at the same instant; fired/s from their due time to the last ack;
- steady: `--rate` timers due per second for `--steady-s` seconds; lateness p50/p99/max.
Lateness is from a timer's due time to the broker's acknowledgement of its request; CPU/timer
is this process's CPU time (scheduler and producer threads) over the timers fired. Raw
kafka-python producing the same values is printed first: the floor of CPU/timer.
`--schedulers N` runs N scheduler threads in this process; `--scheduler-processes N` runs N
worker processes instead (`bench.timer_workers`), each what a rules replica runs, sharing the
due timers through the same database (CPU/timer is then the workers' CPU).

PostgreSQL is reached at 127.0.0.1:5432 as in the tests (a fresh database, dropped at the end);
a Tansu broker is started for the scheduler's publishes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaProducer
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from avisa.broker import free_port, start_tansu, stop
from bench.timer_workers import (
    SchedulerProcesses,
    Schedulers,
    SchedulerThreads,
    connected_producer,
)
from common.db import make_engine, make_sessions, upgrade
from common.kafka import ensure_topics
from schemas.events import CloudEvent
from schemas.notifications import NotificationRequest
from schemas.rules import Rule, Template
from schemas.topics import Topics
from services.rules import flows, timers
from services.rules.main import MIGRATIONS, VERSION_TABLE
from services.rules.models import TimerRow
from services.rules.rendering import Renderer

CITIZEN = {"id": "ES-12345678Z", "name": "Ana", "phone": "+34600111222", "locale": "es"}


def request(n: int, due: datetime) -> NotificationRequest:
    return NotificationRequest.model_validate(
        {
            "id": str(uuid.uuid4()),
            "event": {
                "source": "dgt",
                "id": f"e{n}",
                "type": "license.expiring",
                "subject": f"license/{n}",
            },
            "rule": {"id": "bench", "version": 1},
            "citizen": CITIZEN,
            "channels": ["sms"],
            "content": {"sms": {"body": "Tu permiso caduca el 15 de enero de 2027."}},
            "locale": "es",
            "scheduled_for": due,
            "step": "-P7D",
        }
    )


def _rows(dues: Iterable[datetime], now: datetime) -> Iterator[dict[str, Any]]:
    """Rows as `timers.timer_row` makes them, built without validating each request."""
    template = request(0, now).model_dump(mode="json")
    for n, due in enumerate(dues):
        nid = str(uuid.uuid4())
        event = {**template["event"], "id": f"e{n}", "subject": f"license/{n}"}
        citizen = {**CITIZEN, "id": f"ES-{n:08d}"}  # keys spread over the partitions
        payload = {
            **template,
            "id": nid,
            "event": event,
            "citizen": citizen,
            "scheduled_for": due.isoformat(),
        }
        yield {
            "notification_id": nid,
            "due_at": due,
            "state": timers.PENDING,
            "rule_id": "bench",
            "rule_version": 1,
            "subject": event["subject"],
            "source": "dgt",
            "event_id": event["id"],
            "event_time": now,
            "step": "-P7D",
            "payload": payload,
            "not_after": None,
            "created_at": now,
            "updated_at": now,
        }


def bulk_insert(engine: Engine, dues: Iterable[datetime], *, chunk: int = 10_000) -> list[str]:
    """Fill the table fast (multi-row inserts, one transaction per chunk); returns the ids."""
    ids: list[str] = []
    batch: list[dict[str, Any]] = []
    statement = insert(TimerRow)
    for row in _rows(dues, datetime.now(UTC)):
        batch.append(row)
        if len(batch) >= chunk:
            with engine.begin() as connection:
                connection.execute(statement, batch)
            ids += [r["notification_id"] for r in batch]
            batch = []
    if batch:
        with engine.begin() as connection:
            connection.execute(statement, batch)
        ids += [r["notification_id"] for r in batch]
    return ids


def service_insert(sessions: sessionmaker[Session], count: int, far: datetime) -> float:
    """Timers/s stored the way the consumer does (`add_absent`, 2,000 per transaction)."""
    now = datetime.now(UTC)
    requests = [request(n, far + timedelta(seconds=n)) for n in range(count)]
    started = time.perf_counter()
    for start in range(0, count, 2000):
        chunk = [
            timers.timer_row(r, subject=r.event.subject, event_time=now, now=now)
            for r in requests[start : start + 2000]
        ]
        with sessions() as session, session.begin():
            timers.add_absent(chunk, session=session)
    return count / (time.perf_counter() - started)


def fire(schedulers: Schedulers, ids_due: dict[str, datetime]) -> dict[str, float]:
    """Run the schedulers until every timer in `ids_due` was acknowledged; rate and lateness."""
    schedulers.start()
    while schedulers.count() < len(ids_due):
        time.sleep(0.05)
    fired = schedulers.finish()
    late = sorted(fired.acked[i] - d.timestamp() for i, d in ids_due.items())
    first_due = min(d.timestamp() for d in ids_due.values())
    span = max(fired.acked.values()) - first_due  # from the first due time to the last ack
    return {
        "fired_per_s": len(ids_due) / max(span, 1e-6),
        "late_p50_ms": 1000 * statistics.median(late),
        "late_p99_ms": 1000 * late[int(0.99 * (len(late) - 1))],
        "late_max_ms": 1000 * late[-1],
        "rounds": fired.rounds,
        "cpu_us": 1e6 * fired.cpu_s / len(ids_due),
    }


def due_soon(engine: Engine, dues: list[timedelta], fill_rate: float) -> dict[str, datetime]:
    """Insert timers due at `dues` after a start far enough ahead for the insert to finish."""
    lead = 1.0 + 2.0 * len(dues) / fill_rate
    start = datetime.now(UTC) + timedelta(seconds=lead)
    moments = [start + d for d in dues]
    ids = bulk_insert(engine, moments)
    if datetime.now(UTC) > start:
        print("  (warning: the insert overran the first due time)")
    return dict(zip(ids, moments, strict=True))


def pending_count(engine: Engine) -> int:
    with engine.connect() as connection:
        query = select(func.count()).select_from(TimerRow).where(TimerRow.state == timers.PENDING)
        return int(connection.scalar(query) or 0)


def level(engine: Engine, schedulers: Schedulers, pending: int, args: Any) -> None:
    """Grow the pending timers to `pending`, then measure inserts, a burst and a steady rate."""
    far = datetime.now(UTC) + timedelta(days=30)
    missing = pending - pending_count(engine)
    started = time.perf_counter()
    bulk_insert(engine, (far + timedelta(milliseconds=n) for n in range(missing)))
    fill_rate = max(missing, 1) / (time.perf_counter() - started)
    sessions = make_sessions(engine)
    service_rate = service_insert(sessions, args.insert_sample, far + timedelta(days=1))
    print(
        f" {pending:,} pending: inserted {service_rate:,.0f}/s (service path, "
        f"{args.insert_sample:,} timers); bench fill {missing:,} at {fill_rate:,.0f}/s"
    )
    estimate = fill_rate if missing >= 5000 else 20_000.0
    burst_dues = due_soon(engine, [timedelta(0)] * args.burst, estimate)
    burst = fire(schedulers, burst_dues)
    print(
        f"  burst of {args.burst:,} due at once: {burst['fired_per_s']:,.0f} fired/s, lateness "
        f"p50 {burst['late_p50_ms']:.0f} ms p99 {burst['late_p99_ms']:.0f} ms "
        f"max {burst['late_max_ms']:.0f} ms; {burst['cpu_us']:.0f} µs CPU/timer, "
        f"{burst['rounds']} rounds"
    )
    count = int(args.rate * args.steady_s)
    spread = [timedelta(seconds=n / args.rate) for n in range(count)]
    steady = fire(schedulers, due_soon(engine, spread, estimate))
    print(
        f"  steady {args.rate:,} due/s for {args.steady_s:g} s: {steady['fired_per_s']:,.0f} "
        f"fired/s, lateness p50 {steady['late_p50_ms']:.0f} ms p99 {steady['late_p99_ms']:.0f}"
        f" ms max {steady['late_max_ms']:.0f} ms; {steady['cpu_us']:.0f} µs CPU/timer, "
        f"{steady['rounds']} rounds"
    )


def timer_figures(url: str, bootstrap: str, args: Any) -> None:
    engine = make_engine(url)
    upgrade(engine, script_location=MIGRATIONS, version_table=VERSION_TABLE)
    topics = Topics(f"b{uuid.uuid4().hex[:8]}.")
    ensure_topics([bootstrap], topics.all(), partitions=6)
    schedulers: Schedulers
    if args.scheduler_processes:
        count = args.scheduler_processes
        schedulers = SchedulerProcesses(count, url, bootstrap, topics, args.batch)
    else:
        producers = [
            connected_producer(bootstrap, f"bench-{n}", topics) for n in range(args.schedulers)
        ]
        schedulers = SchedulerThreads(make_sessions(engine), producers, topics, args.batch)
    print(f" schedulers: {schedulers.label}, {args.batch} timers a round")
    try:
        for pending in args.pending:
            level(engine, schedulers, pending, args)
    finally:
        schedulers.close()
        engine.dispose()


def rules_figures(rule_count: int, event_count: int) -> None:
    """Events/s matched against `rule_count` rules and rendered (no I/O)."""
    template = Template.model_validate(
        {
            "id": "t",
            "locales": {
                "es": {"sms": "Hola {{ citizen.name }}, caduca el {{ data.expires_on | fecha }}"}
            },
        }
    )
    rules = []
    for n in range(rule_count):
        body: dict[str, Any] = {
            "id": f"r{n}",
            "on": f"kind{n % 50}.*",
            "channels": ["sms"],
            "template": "t",
        }
        if n % 2:
            body["when"] = f'data.category == "{"AB"[n % 4 // 2]}"'
        rules.append(flows.CompiledRule.build(Rule.model_validate(body), 1))
    renderer = Renderer(default_locale="es", default_timezone="Europe/Madrid")
    events = [
        CloudEvent.model_validate(
            {
                "specversion": "1.0",
                "id": f"e{n}",
                "source": "dgt",
                "type": f"kind{n % 60}.due",
                "subject": f"s/{n}",
                "time": "2026-11-29T10:00:00Z",
                "data": {"citizen": CITIZEN, "expires_on": "2027-01-15", "category": "AB"[n % 2]},
            }
        )
        for n in range(event_count)
    ]
    now = datetime.now(UTC)
    planned = 0
    started = time.perf_counter()
    for event in events:
        matches = flows.match(rules, event, now=now)
        planned += len(
            flows.plan(matches.rules, {"t": template}, event, renderer=renderer, now=now)
        )
    seconds = time.perf_counter() - started
    print(
        f"events against {rule_count} rules: {event_count / seconds:,.0f} events/s "
        f"({planned / event_count:.1f} notifications rendered per event)"
    )


def raw_produce(bootstrap: str, count: int = 20_000) -> None:
    """The floor: raw kafka-python producing notification-sized values (send all, one flush)."""
    topic = f"raw-{uuid.uuid4().hex[:8]}"
    ensure_topics([bootstrap], [topic], partitions=6)
    value = json.dumps(next(_rows([datetime.now(UTC)], datetime.now(UTC)))["payload"]).encode()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    producer.send(topic, value=value).get(10)
    started, cpu = time.perf_counter(), time.process_time()
    for n in range(count):
        producer.send(topic, key=f"ES-{n:08d}".encode(), value=value)
    producer.flush()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    producer.close()
    print(
        f"raw kafka-python produce ({len(value)} B values): {count / seconds:,.0f} msg/s, "
        f"{1e6 * cpu / count:.0f} µs CPU/msg"
    )


def _counts(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--pending", type=_counts, default=[10_000, 100_000], help="levels, e.g. 10000,1000000"
    )
    parser.add_argument("--burst", "--due", type=int, default=10_000, help="timers due at once")
    parser.add_argument("--rate", type=int, default=10_000, help="timers due per second")
    parser.add_argument("--steady-s", type=float, default=3.0)
    parser.add_argument("--insert-sample", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500, help="timers claimed per round")
    parser.add_argument("--schedulers", type=int, default=1, help="scheduler threads")
    parser.add_argument(
        "--scheduler-processes",
        type=int,
        default=0,
        help="scheduler worker processes (rules replicas) instead of threads",
    )
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--events", type=int, default=2_000, help="0 skips the rules figure")
    args = parser.parse_args()
    if args.events:
        rules_figures(args.rules, args.events)
    port = free_port()
    broker = start_tansu(port)
    try:
        raw_produce(f"127.0.0.1:{port}")
        for kind in args.db.split(","):
            print(f"{kind}:")
            if kind == "sqlite":
                with tempfile.TemporaryDirectory() as folder:
                    timer_figures(f"sqlite:///{folder}/bench.db", f"127.0.0.1:{port}", args)
            else:
                from tests.conftest import create_postgres_database, drop_postgres_database

                url = create_postgres_database()
                try:
                    timer_figures(url, f"127.0.0.1:{port}", args)
                finally:
                    drop_postgres_database(url)
    finally:
        stop(broker)


if __name__ == "__main__":
    main()
