"""`make bench`: the whole system as real processes against a raw kafka-python baseline.

Starts Tansu, fake providers (own process, optional latency), the three services; posts
events in batches from this process and measures notifications/s end to end and the latency
from each event's 202 to its SMS reaching the provider. Prints a table, writes JSON to
bench/results/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from avisa.admin import example_event
from avisa.broker import free_port, start_tansu, stop
from bench.baseline import two_hop_baseline
from tests.e2e.system import AGENCY_KEY, System, wait_for

ROOT = Path(__file__).resolve().parents[1]
# The production defaults protect real provider accounts (10 messages/s per sender); the
# benchmark measures the system, so the senders' limits are lifted and the send pool widened.
THROUGHPUT_ENV = {
    "AVISA_SMS_RATE_PER_S": "100000",
    "AVISA_EMAIL_RATE_PER_S": "100000",
    "AVISA_SEND_CONCURRENCY": "32",
    "AVISA_REQUESTS_PER_MINUTE": "1000000",
}


def start_fakes(latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.providers", "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def make_events(count: int) -> list[dict[str, Any]]:
    events = []
    for i in range(count):
        event = example_event(event_id=f"bench-{uuid.uuid4().hex}")
        event["data"]["citizen"]["phone"] = f"+3460{i:07d}"
        event["data"]["citizen"]["id"] = f"C-{i}"
        events.append(event)
    return events


def drive(system: System, events: list[dict[str, Any]], batch: int) -> dict[str, float]:
    """Post the events in batches; return each phone's 202 time."""
    accepted_at: dict[str, float] = {}
    with httpx.Client(
        base_url=system.services["events"].url,
        timeout=60,
        headers={
            "Authorization": f"Bearer {AGENCY_KEY}",
            "Content-Type": "application/cloudevents-batch+json",
        },
    ) as client:
        for start in range(0, len(events), batch):
            chunk = events[start : start + batch]
            response = client.post("/v1/events", content=json.dumps(chunk))
            response.raise_for_status()
            now = time.time()
            for event in chunk:
                accepted_at[event["data"]["citizen"]["phone"]] = now
    return accepted_at


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    broker = start_tansu(port)
    fakes, fakes_url = start_fakes(args.latency_ms)
    workdir = Path(tempfile.mkdtemp(prefix="avisa-bench-"))
    try:
        baseline = two_hop_baseline(f"127.0.0.1:{port}", args.baseline_messages)
        system = System(
            bootstrap=f"127.0.0.1:{port}",
            database_url=args.database_url or f"sqlite:///{workdir}/avisa.db",
            providers_url=fakes_url,
            workdir=workdir,
            topic_prefix="bench.",
            extra_env=THROUGHPUT_ENV,
        )
        system.start()
        try:
            applied = system.avisa(
                "rules", "apply", "-f", "examples", "--url", system.services["rules"].url
            )
            assert applied.returncode == 0, applied.stderr
            events = make_events(args.events)
            started = time.time()
            accepted_at = drive(system, events, args.batch)
            ingest_s = time.time() - started

            def all_arrived() -> list[dict[str, Any]] | None:
                requests = httpx.get(f"{fakes_url}/_fake/requests").json()["requests"]
                return requests if len(requests["twilio"]) >= len(events) else None

            requests = wait_for(all_arrived, timeout=args.timeout, every=0.5)
            latencies = [r["at"] - accepted_at[r["form"]["To"]] for r in requests["twilio"]]
            last = max(r["at"] for r in requests["twilio"] + requests["sendgrid"])
            total = len(requests["twilio"]) + len(requests["sendgrid"])
        finally:
            system.stop()
    finally:
        fakes.terminate()
        stop(broker)
    end_to_end = total / (last - started)
    return {
        "events": args.events,
        "batch": args.batch,
        "provider_latency_ms": args.latency_ms,
        "database": "postgresql" if args.database_url else "sqlite",
        "ingest_events_per_s": args.events / ingest_s,
        "notifications_per_s": end_to_end,
        "latency_s": {
            "p50": percentile(latencies, 0.50),
            "p95": percentile(latencies, 0.95),
            "p99": percentile(latencies, 0.99),
            "max": max(latencies),
            "mean": statistics.fmean(latencies),
        },
        "baseline": baseline,
        "ratio_notifications_to_two_hop": end_to_end / baseline["two_hop_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--baseline-messages", type=int, default=20000)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--timeout", type=float, default=600.0)
    result = run(parser.parse_args())
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"e2e-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    latency = result["latency_s"]
    baseline = result["baseline"]
    lines = [
        f"end to end: {result['events']} events, {result['database']}, "
        f"provider latency {result['provider_latency_ms']} ms",
        f"  ingest (batches of {result['batch']}):  {result['ingest_events_per_s']:9.0f} events/s",
        f"  notifications at the provider: {result['notifications_per_s']:9.0f} /s",
        f"  202 -> SMS at provider: p50 {latency['p50']:.3f}s  p95 {latency['p95']:.3f}s  "
        f"p99 {latency['p99']:.3f}s  max {latency['max']:.3f}s",
        "raw kafka-python on the same broker",
        f"  produce:                       {baseline['produce_per_s']:9.0f} msg/s",
        f"  produce>consume>produce>consume {baseline['two_hop_per_s']:8.0f} msg/s",
        f"ratio notifications/s / two-hop: {result['ratio_notifications_to_two_hop']:.3f}",
        f"results: {path}",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
