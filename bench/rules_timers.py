"""Rules-service figures: timers inserted/s and fired/s with many pending, firing lateness,
and events/s evaluated against 200 rules (pure matching + rendering).

    .venv/bin/python -m bench.rules_timers [--pending 100000] [--due 5000] [--db sqlite,postgresql]

PostgreSQL is reached at 127.0.0.1:5432 as in the tests (a fresh database, dropped at the end);
a Tansu broker is started for the scheduler's publishes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from avisa.broker import free_port, start_tansu, stop
from common.db import make_engine, make_sessions, upgrade
from common.kafka import OutgoingMessage, Producer, ensure_topics
from schemas.events import CloudEvent
from schemas.notifications import NotificationRequest
from schemas.rules import Rule, Template
from schemas.topics import Topics
from services.rules import flows, timers
from services.rules.main import MIGRATIONS, VERSION_TABLE
from services.rules.rendering import Renderer
from services.rules.scheduler import Scheduler, SchedulerMetrics

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


def insert(sessions: Any, dues: Iterable[datetime], *, batch: int = 2000) -> tuple[int, float]:
    """Store timers the way the consumer does (add_absent per transaction); returns count, s."""
    now = datetime.now(UTC)
    started, count, chunk = time.perf_counter(), 0, []
    for due in dues:
        r = request(count, due)
        chunk.append(timers.timer_row(r, subject=r.event.subject, event_time=now, now=now))
        count += 1
        if len(chunk) >= batch:
            with sessions() as session, session.begin():
                timers.add_absent(chunk, session=session)
            chunk = []
    if chunk:
        with sessions() as session, session.begin():
            timers.add_absent(chunk, session=session)
    return count, time.perf_counter() - started


class TimingProducer(Producer):
    """Records when each notification's publish was acknowledged."""

    acked: dict[str, float]

    def publish(self, messages: Iterable[OutgoingMessage]) -> None:
        batch = list(messages)
        super().publish(batch)
        at = time.time()
        for m in batch:
            self.acked[m.value[7:43].decode()] = at  # {"id":"<uuid>"... : the id, cheaply


def fire(sessions: Any, bootstrap: str, topics: Topics, dues: list[datetime]) -> dict[str, float]:
    """Insert timers due at `dues`, run one scheduler until all fired; lateness and rate."""
    ids_due: dict[str, datetime] = {}
    now = datetime.now(UTC)
    with sessions() as session, session.begin():
        for n, due in enumerate(dues):
            r = request(n, due)
            ids_due[r.id] = due
            session.add(timers.timer_row(r, subject=r.event.subject, event_time=now, now=now))
    producer = TimingProducer([bootstrap], client_id="bench")
    producer.acked = {}
    producer.publish([OutgoingMessage(topic=topics.status, value=b"{}")])  # connect first
    producer.acked = {}
    scheduler = Scheduler(
        sessions=sessions,
        producer=producer,
        topics=topics,
        metrics=SchedulerMetrics(CollectorRegistry()),
        batch_size=500,
    )
    thread = threading.Thread(target=scheduler.run, daemon=True)
    thread.start()
    while len(producer.acked) < len(dues):
        time.sleep(0.05)
    scheduler.stop()
    thread.join(10)
    producer.close()
    late = sorted(producer.acked[i] - d.timestamp() for i, d in ids_due.items())
    first_due = min(d.timestamp() for d in ids_due.values())
    span = max(producer.acked.values()) - first_due  # from the due time to the last ack
    return {
        "fired_per_s": len(dues) / max(span, 1e-6),
        "late_p50_ms": 1000 * statistics.median(late),
        "late_p99_ms": 1000 * late[int(0.99 * (len(late) - 1))],
        "late_max_ms": 1000 * late[-1],
    }


def timer_figures(url: str, bootstrap: str, pending: int, due: int) -> None:
    engine = make_engine(url)
    upgrade(engine, script_location=MIGRATIONS, version_table=VERSION_TABLE)
    sessions = make_sessions(engine)
    topics = Topics(f"b{uuid.uuid4().hex[:8]}.")
    ensure_topics([bootstrap], topics.all(), partitions=6)
    far = datetime.now(UTC) + timedelta(days=30)
    count, seconds = insert(sessions, (far + timedelta(seconds=n) for n in range(pending)))
    print(f"  inserted {count} pending timers: {count / seconds:,.0f}/s")
    start = datetime.now(UTC) + timedelta(seconds=1)
    burst = fire(sessions, bootstrap, topics, [start] * due)
    print(
        f"  burst of {due} due at once with {pending} pending: {burst['fired_per_s']:,.0f} fired/s,"
        f" lateness p50 {burst['late_p50_ms']:.0f} ms p99 {burst['late_p99_ms']:.0f} ms"
    )
    rate = 1000
    start = datetime.now(UTC) + timedelta(seconds=1)
    steady_dues = [start + timedelta(seconds=n / rate) for n in range(min(due, 3 * rate))]
    steady = fire(sessions, bootstrap, topics, steady_dues)
    print(
        f"  steady {rate} due/s for {len(steady_dues) / rate:.1f} s: lateness p50 "
        f"{steady['late_p50_ms']:.0f} ms p99 {steady['late_p99_ms']:.0f} ms "
        f"max {steady['late_max_ms']:.0f} ms"
    )
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=5_000)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--events", type=int, default=5_000)
    args = parser.parse_args()
    rules_figures(args.rules, args.events)
    port = free_port()
    broker = start_tansu(port)
    try:
        for kind in args.db.split(","):
            print(f"{kind}:")
            if kind == "sqlite":
                with tempfile.TemporaryDirectory() as folder:
                    timer_figures(
                        f"sqlite:///{folder}/bench.db", f"127.0.0.1:{port}", args.pending, args.due
                    )
            else:
                from tests.conftest import create_postgres_database, drop_postgres_database

                url = create_postgres_database()
                try:
                    timer_figures(url, f"127.0.0.1:{port}", args.pending, args.due)
                finally:
                    drop_postgres_database(url)
    finally:
        stop(broker)


if __name__ == "__main__":
    main()
