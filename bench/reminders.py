"""Reminders through the real processes: N timers due within the same minute.

Posts N/10 events to the events service; a reminder rule turns each into ten durable timers
in the rules service (due 10:00, 10:06, ... 10:54 minutes before the event's deadline; the
deadlines spread so that every timer falls due within one `--window`); then the rules
scheduler fires them onto notifications.v1. `--burst database` writes the N timers straight
into the rules table instead (minutes faster; the firing is the same). Lateness is each
request's produce time on notifications.v1 minus its `scheduled_for`. The notifier is not
started: its sending is measured by `python -m bench`; here the scheduler has the machine.

Each run first seeds `--pending` far-future timers (due in 30 days) into a fresh database
before the processes start, and measures raw kafka-python (produce → consume → produce →
consume) on the same broker: fired/s is reported beside it. One run per pending level and
rules replica count (replicas share due timers with SKIP LOCKED).

    .venv/bin/python -m bench.reminders --timers 100000 [--database-url postgresql]
        [--burst events|database] [--pending 10000 100000 1000000] [--rules-replicas 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaConsumer, TopicPartition

from bench.__main__ import apply_rules, results_path
from bench.baseline import two_hop_baseline
from bench.e2e import latency_summary, percentile, post_events
from bench.plot import plot_reminders
from bench.seeding import migrate_rules, seed_timers
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


@dataclass
class Round:
    """One run: `pending` far-future timers seeded before the processes start, `replicas`
    of the rules service; what seeding took."""

    pending: int
    replicas: int
    seeded_s: float = 0.0

    def prepare(self, database_url: str) -> None:
        migrate_rules(database_url)
        started = time.perf_counter()
        far = datetime.now(UTC) + timedelta(days=30)
        seed_timers(
            database_url, (far + timedelta(seconds=i) for i in range(self.pending)), "bench-pending"
        )
        self.seeded_s = time.perf_counter() - started


def run(args: argparse.Namespace, pending: int, replicas: int) -> dict[str, Any]:
    setup = Round(pending, replicas)
    with running_stack(
        database_url=args.database_url,
        replicas={"rules": replicas},
        services=("events", "rules"),
        prepare=setup.prepare,
    ) as stack:
        baseline = two_hop_baseline(stack.bootstrap, args.baseline_messages)
        if args.burst == "events":
            apply_rules(stack, str(rules_folder(args.window_s / PER_EVENT)))
        result = measure(stack, args, replicas)
    result.update(
        pending=pending,
        seed_pending_s=setup.seeded_s,
        baseline=baseline,
        ratio_fired_to_two_hop=result["fired_per_s"] / baseline["two_hop_per_s"],
    )
    return result


def make_burst(stack: Stack, args: argparse.Namespace, first_due: datetime) -> None:
    """The timers due within the window: through the events and rules services (ten per
    event), or written straight into the table (`--burst database`)."""
    if args.burst == "events":
        events = reminder_events(args.timers // PER_EVENT, first_due, args.window_s / PER_EVENT)
        post_all(stack.url("events"), events)
        return
    step = args.window_s / args.timers
    dues = (first_due + timedelta(seconds=step * i) for i in range(args.timers))
    seed_timers(stack.system.database_url, dues, "bench-burst")


def fired_by_replica(stack: Stack) -> list[float]:
    """`avisa_rules_timers_fired_total` of each rules replica: how the schedulers shared."""
    counts = []
    for service in stack.replicas["rules"]:
        text = httpx.get(f"{service.url}/metrics", timeout=30).text
        found = re.search(r"^avisa_rules_timers_fired_total (\S+)$", text, re.MULTILINE)
        counts.append(float(found.group(1)) if found else float("nan"))
    return counts


def measure(stack: Stack, args: argparse.Namespace, replicas: int) -> dict[str, Any]:
    topic = Topics(stack.system.topic_prefix).notifications
    lead = args.lead_s or (
        40 + args.timers / 500 if args.burst == "events" else 20 + args.timers / 5000
    )
    started = datetime.now(UTC)
    first_due = started + timedelta(seconds=lead)
    make_burst(stack, args, first_due)
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
        "burst": args.burst,
        "window_s": args.window_s,
        "rules_replicas": replicas,
        "fired_by_replica": fired_by_replica(stack),
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


def report(result: dict[str, Any], png: Path) -> str:
    late, baseline = result["lateness_s"], result["baseline"]
    load = " / ".join(
        " ".join(f"{x:.2f}" for x in result[k])
        for k in ("load_average_before", "load_average_after")
    )
    return (
        f"reminders: {result['timers']} timers due within {result['window_s']:.0f} s "
        f"({result['due_per_s']:.0f}/s, made via {result['burst']}), {result['database']}, "
        f"{result['pending']} pending (seeded in {result['seed_pending_s']:.1f} s), "
        f"rules replicas {result['rules_replicas']} (fired each: {result['fired_by_replica']})\n"
        f"  burst stored in {result['posted_s']:.1f} s (lead {result['lead_s']:.0f} s)\n"
        f"  fired {result['fired']} (the rest were stored after their time: skipped): "
        f"{result['fired_per_s']:.0f}/s; lateness p50 "
        f"{late['p50']:.3f}s p99 {late['p99']:.3f}s max {late['max']:.3f}s\n"
        f"  raw kafka-python on the same broker: produce {baseline['produce_per_s']:.0f} msg/s, "
        f"produce>consume>produce>consume {baseline['two_hop_per_s']:.0f} msg/s; "
        f"ratio fired/s / two-hop {result['ratio_fired_to_two_hop']:.3f}\n"
        f"  CPU s: {result['cpu_s']}\n"
        f"  load average before/after: {load}\n"
        f"  plot: {png}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timers", type=int, default=100_000)
    parser.add_argument("--window-s", type=float, default=60.0, help="due within this many s")
    parser.add_argument(
        "--lead-s", type=float, default=0.0, help="default: 40 s + timers/500 (events)"
    )
    parser.add_argument(
        "--burst", choices=("events", "database"), default="events", help="how timers are made"
    )
    parser.add_argument(
        "--pending", type=int, nargs="+", default=[0], help="far-future timers seeded first"
    )
    parser.add_argument("--rules-replicas", type=int, nargs="+", default=[1])
    parser.add_argument("--baseline-messages", type=int, default=20000)
    parser.add_argument("--database-url", default=None, help="`postgresql`: a fresh database")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    path = results_path("reminders", "json")
    rows: list[dict[str, Any]] = []
    for pending in args.pending:
        for replicas in args.rules_replicas:
            result = run(args, pending, replicas)
            png = plot_reminders(result, path.with_name(f"{path.stem}-{len(rows)}.png"))
            rows.append(result)
            path.write_text(json.dumps(rows, indent=2))  # after each run: partial results kept
            print(report(result, png), flush=True)
    print(summary(rows) + f"\nresults: {path}")


def summary(rows: list[dict[str, Any]]) -> str:
    lines = ["pending   rules  fired/s  lateness p50/p99/max (s)  ratio to two-hop  load before"]
    for r in rows:
        late = r["lateness_s"]
        lines.append(
            f"{r['pending']:>9} x{r['rules_replicas']:<5} {r['fired_per_s']:7.0f}  "
            f"{late['p50']:.3f} / {late['p99']:.3f} / {late['max']:.3f}"
            f"{r['ratio_fired_to_two_hop']:18.3f}  {r['load_average_before'][0]:.2f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
