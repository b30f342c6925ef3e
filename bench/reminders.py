"""Reminders through the real processes: N timers due within the same minute.

Posts N/10 events to the events service; a reminder rule turns each into ten durable timers
in the rules service (due 10:00, 10:06, ... 10:54 minutes before the event's deadline; the
deadlines spread so that every timer falls due within one `--window`); then the rules
scheduler fires them onto notifications.v1. Lateness is each request's
produce time on notifications.v1 minus its `scheduled_for`. The notifier is not started: its
sending is measured by `python -m bench`; here the scheduler has the machine.

    .venv/bin/python -m bench.reminders --timers 100000 [--database-url postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from bench.__main__ import apply_rules, results_path
from bench.e2e import latency_summary, percentile, post_events
from bench.plot import plot_reminders
from bench.system import Stack, cpu_used, running_stack
from bench.topics import records
from schemas.topics import Topics
from tests.e2e.system import wait_for

RULE = """id: bench-recordatorio
description: Recordatorio diez minutos antes del plazo (benchmark)
enabled: true
on: bench.reminder
schedule:
  relative_to: data.deadline
  offsets: [{offsets}]
channels: [sms]
delivery: first
template: bench-recordatorio
"""
TEMPLATE = """id: bench-recordatorio
description: Recordatorio del benchmark
locales:
  es:
    sms: "Hola {{ citizen.name }}, tu plazo vence pronto."
    email_subject: "Tu plazo vence pronto"
    email_text: "Hola {{ citizen.name }}, tu plazo vence pronto."
"""


# Ten reminders per event, `STEP_S` apart: a tenth of the events to ingest and match.
PER_EVENT = 10


def rules_folder(step_s: float) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="avisa-bench-rules-"))
    (folder / "rules").mkdir()
    (folder / "templates").mkdir()
    offsets = ", ".join(f'"-PT10M{round(i * step_s)}S"' for i in range(PER_EVENT))
    (folder / "rules/bench-recordatorio.yaml").write_text(RULE.replace("{offsets}", offsets))
    (folder / "templates/bench-recordatorio.yaml").write_text(TEMPLATE)
    return folder


def reminder_events(count: int, first_due: datetime, step_s: float) -> list[dict[str, Any]]:
    """One event per citizen; its latest reminder due within `step_s` of `first_due`, the
    other nine `step_s` apart after it: every due time spread evenly over the window."""
    run = f"{time.time_ns():x}"
    events = []
    for i in range(count):
        due = first_due + timedelta(seconds=step_s * i / count)
        deadline = (due + timedelta(minutes=10, seconds=(PER_EVENT - 1) * step_s)).isoformat()
        deadline = deadline.replace("+00:00", "Z")
        events.append(
            {
                "specversion": "1.0",
                "id": f"rem-{run}-{i}",
                "source": "demo",
                "type": "bench.reminder",
                "subject": f"plazo/{run}-{i}",
                "data": {
                    "citizen": {"id": f"R-{run}-{i}", "name": "Ana", "phone": f"+3461{i:07d}"},
                    "deadline": deadline,
                },
            }
        )
    return events


def published(bootstrap: str, topic: str) -> int:
    """How many records `topic` holds now."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


class Settled:
    """True once every timer fired, or (some were stored too late and skipped) once the
    count stopped growing for 10 s after the last due time."""

    def __init__(self, count: Callable[[], int], expected: int, last_due: float) -> None:
        self._count, self._expected, self._last_due = count, expected, last_due
        self._seen, self._since = -1, time.time()

    def __call__(self) -> bool:
        now, count = time.time(), self._count()
        if count != self._seen:
            self._seen, self._since = count, now
        return count >= self._expected or (now > self._last_due and now - self._since > 10)


def post_all(url: str, events: list[dict[str, Any]], clients: int = 2) -> None:
    share = -(-len(events) // clients)
    with ThreadPoolExecutor(clients) as pool:
        parts = [events[i : i + share] for i in range(0, len(events), share)]
        list(pool.map(lambda part: post_events(url, part, 1000), parts))


def run(args: argparse.Namespace) -> dict[str, Any]:
    replicas = {"rules": args.rules_replicas}
    with running_stack(
        database_url=args.database_url, replicas=replicas, services=("events", "rules")
    ) as stack:
        apply_rules(stack, str(rules_folder(args.window_s / PER_EVENT)))
        return measure(stack, args)


def measure(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    topic = Topics(stack.system.topic_prefix).notifications
    lead = args.lead_s or 40 + args.timers / 500
    started = datetime.now(UTC)
    first_due = started + timedelta(seconds=lead)
    events = reminder_events(args.timers // PER_EVENT, first_due, args.window_s / PER_EVENT)
    post_all(stack.url("events"), events)
    posted_s = (datetime.now(UTC) - started).total_seconds()
    cpu_before = stack.cpu()
    load_before = os.getloadavg()
    last_due = first_due.timestamp() + args.window_s
    wait_for(
        Settled(lambda: published(stack.bootstrap, topic), args.timers, last_due),
        timeout=lead + args.window_s + args.timeout,
        every=2.0,
    )
    cpu = cpu_used(cpu_before, stack.cpu())
    fired = records(stack.bootstrap, topic)
    late = [(at, at - datetime.fromisoformat(v["scheduled_for"]).timestamp()) for v, at in fired]
    first = first_due.timestamp()
    span = max(at for at, _ in late) - first
    return {
        "timers": args.timers,
        "window_s": args.window_s,
        "rules_replicas": args.rules_replicas,
        "database": "postgresql" if args.database_url else "sqlite",
        "lead_s": lead,
        "posted_s": posted_s,
        "fired": len(late),
        "fired_per_s": len(late) / span,
        "due_per_s": args.timers / args.window_s,
        "lateness_s": latency_summary([lateness for _, lateness in late]),
        "cpu_s": cpu,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "series": series(first, args.window_s, args.timers, late),
    }


def series(
    first: float, window_s: float, timers: int, late: list[tuple[float, float]]
) -> dict[str, list[float]]:
    end = int(max(at for at, _ in late) - first) + 1
    fired: list[list[float]] = [[] for _ in range(end)]
    for at, lateness in late:
        fired[max(0, int(at - first))].append(lateness)
    due_per_s = timers / window_s
    return {
        "second": list(range(end)),
        "due": [due_per_s if s < window_s else 0.0 for s in range(end)],
        "fired": [float(len(f)) for f in fired],
        "lateness_p50": [percentile(f, 0.5) if f else float("nan") for f in fired],
        "lateness_max": [max(f) if f else float("nan") for f in fired],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timers", type=int, default=100_000)
    parser.add_argument("--window-s", type=float, default=60.0, help="due within this many s")
    parser.add_argument("--lead-s", type=float, default=0.0, help="default: 40 s + timers/500")
    parser.add_argument("--rules-replicas", type=int, default=1)
    parser.add_argument("--database-url", default=None, help="`postgresql`: a fresh database")
    parser.add_argument("--timeout", type=float, default=600.0)
    result = run(parser.parse_args())
    path = results_path("reminders", "json")
    png = plot_reminders(result, path.with_suffix(".png"))
    path.write_text(json.dumps(result, indent=2))
    late = result["lateness_s"]
    print(
        f"reminders: {result['timers']} timers due within {result['window_s']:.0f} s "
        f"({result['due_per_s']:.0f}/s), {result['database']}, "
        f"rules replicas {result['rules_replicas']}\n"
        f"  posted in {result['posted_s']:.1f} s (lead {result['lead_s']:.0f} s)\n"
        f"  fired {result['fired']} (the rest were stored after their time: skipped): "
        f"{result['fired_per_s']:.0f}/s; lateness p50 "
        f"{late['p50']:.3f}s p99 {late['p99']:.3f}s max {late['max']:.3f}s\n"
        f"  CPU s: {result['cpu_s']}\n"
        f"  load average before/after: {result['load_average_before']} / "
        f"{result['load_average_after']}\n"
        f"results: {path}  plot: {png}"
    )


if __name__ == "__main__":
    main()
