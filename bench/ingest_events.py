"""Ingest throughput of the events service beside raw kafka-python produce on the same broker.

    .venv/bin/python -m bench.ingest_events --posts 6000 --connections 64 --batches 20 --batch 500
    .venv/bin/python -m bench.ingest_events --database-url postgresql   # a fresh database

Starts Tansu and the real events service (`avisa serve events`: uvicorn with uvloop and
httptools; one worker unless `--workers`; SQLite unless `--database-url`) as processes, then:

- raw kafka-python produce of the same JSON values on the same broker (acks=all, idempotent,
  pipelined: every send, then one flush), from this process: the baseline;
- single-event POSTs (structured mode) from `bench.ingest_load`, an aiohttp client in its own
  process keeping `--connections` requests in flight: requests/s, p50/p99 latency;
- batch POSTs of `--batch` events the same way with `--batch-connections`: events/s.

The service's CPU seconds are read from /proc around each phase, so beside the wall-clock
rate the bench prints requests per CPU-second of the service: what one worker does with a
whole core, which the wall-clock rate cannot show on a 2-core machine that the client, the
broker and the database share (with `--workers`, every worker process's CPU is counted).
Ratios to raw produce are the figures to compare across machines. Rate limits and the daily
cap are raised for the run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from avisa.broker import free_port, start_tansu, stop
from bench.__main__ import results_path
from bench.ingest_load import make_event
from bench.system import create_postgres, drop_postgres

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def start_service(
    bootstrap: str, workdir: Path, database_url: str | None, workers: int = 1
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "AVISA_KAFKA_BOOTSTRAP": bootstrap,
        "AVISA_TOPIC_PREFIX": "bench.",
        "AVISA_DATABASE_URL": database_url or f"sqlite:///{workdir / 'avisa.db'}",
        "AVISA_ENV": "development",
        "AVISA_LOG_LEVEL": "WARNING",
        "AVISA_REQUESTS_PER_MINUTE": "100000000",
        "AVISA_DAILY_EVENTS": "1000000000",
        "AVISA_TOPIC_PARTITIONS": "6",
        "AVISA_EVENTS_WORKERS": str(workers),
    }
    avisa = Path(sys.executable).with_name("avisa")
    process = subprocess.Popen(
        [str(avisa), "serve", "events", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=(workdir / "events.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the events service did not start; see {workdir / 'events.log'}")


def _descendants(pid: int) -> list[int]:
    found, queue = [pid], [pid]
    while queue:
        parent = queue.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            children = [int(child) for child in task.read_text().split()]
            found += children
            queue += children
    return found


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children (uvicorn workers), from /proc."""
    total = 0
    for each in _descendants(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rpartition(")")[2].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def cpu_by_thread(pid: int) -> dict[str, float]:
    """CPU seconds by thread id (`pid/tid`) of the process and its children, from /proc. The
    service's Python threads all carry the process's name, so ids are what tells them apart;
    a process's main thread (id = pid) runs its event loop."""
    totals: dict[str, float] = {}
    for each in _descendants(pid):
        for task in Path(f"/proc/{each}/task").glob("*"):
            try:
                fields = (task / "stat").read_text().rpartition(")")[2].split()
            except FileNotFoundError:
                continue
            totals[f"{each}/{task.name}"] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return totals


def _busiest_threads(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds of each thread over a phase, busiest first ("loop" for main threads)."""
    spent = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    named = {
        ("loop " if tid.split("/")[0] == tid.split("/")[1] else "") + tid: round(cpu, 3)
        for tid, cpu in spent.items()
        if cpu > 0
    }
    return dict(sorted(named.items(), key=lambda item: -item[1]))


def measured(
    pid: int, url: str, mode: str, count: int, connections: int, *, size: int = 1, first: int = 0
) -> dict[str, Any]:
    """Run `bench.ingest_load` in its own process; its JSON answer with the service's CPU
    seconds over the measured part (after the client built its bodies and warmed up)."""
    command = [sys.executable, "-m", "bench.ingest_load", "--url", url, "--mode", mode, "--wait"]
    command += ["--count", str(count), "--connections", str(connections), "--size", str(size)]
    command += ["--first", str(first)]
    with subprocess.Popen(
        command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as loader:
        assert loader.stdin is not None and loader.stdout is not None
        if loader.stdout.readline().strip() != "ready":
            raise RuntimeError("the load generator did not start")
        before, threads_before = cpu_s(pid), cpu_by_thread(pid)
        loader.stdin.write("go\n")
        loader.stdin.flush()
        answer = loader.stdout.readline()
        service_cpu_s = cpu_s(pid) - before
        threads = cpu_by_thread(pid)
    result: dict[str, Any] = json.loads(answer)
    result["service_cpu_s"] = service_cpu_s
    result["cpu_s_by_thread"] = _busiest_threads(threads_before, threads)
    return result


def _per_item_us(result: dict[str, Any], items: int) -> dict[str, float]:
    """µs of CPU by thread name for each request (single) or event (batch)."""
    return {
        name: round(spent / items * 1e6, 1) for name, spent in result["cpu_s_by_thread"].items()
    }


def single_posts(pid: int, url: str, count: int, connections: int) -> dict[str, Any]:
    result = measured(pid, url, "single", count, connections, first=1_000_000)
    result["per_s"] = count / result["elapsed_s"]
    result["per_service_cpu_s"] = count / result["service_cpu_s"]
    result["cpu_us_by_thread"] = _per_item_us(result, count)
    return result


def batch_posts(pid: int, url: str, batches: int, size: int, connections: int) -> dict[str, Any]:
    result = measured(pid, url, "batch", batches, connections, size=size, first=3_000_000)
    result["events"] = batches * size
    result["per_s"] = batches * size / result["elapsed_s"]
    result["per_service_cpu_s"] = batches * size / result["service_cpu_s"]
    result["cpu_us_by_thread"] = _per_item_us(result, batches * size)
    return result


def raw_produce(bootstrap: str, count: int) -> dict[str, float]:
    """The same values produced straight to the broker: every send, then one flush."""
    topic = f"bench-raw-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 6, 1)])
    admin.close()
    values = [json.dumps(make_event(i)).encode() for i in range(count)]
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=2
    )
    producer.send(topic, b"warm-up").get(timeout=30)
    cpu, started = time.process_time(), time.perf_counter()  # process time: every thread
    for value in values:
        producer.send(topic, key=value[-40:], value=value)
    producer.flush()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    producer.close()
    return {"pipelined_per_s": count / elapsed, "pipelined_per_cpu_s": count / cpu}


def raw_baseline(bootstrap: str, count: int, runs: int) -> dict[str, Any]:
    """`raw_produce` `runs` times: the median of each figure (one run of a few seconds varies
    by a third between runs on a shared machine), and every run."""
    each = [raw_produce(bootstrap, count) for _ in range(runs)]
    median = {key: statistics.median(run[key] for run in each) for key in each[0]}
    return {**median, "runs": each}


def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    broker = start_tansu(port)
    bootstrap = f"127.0.0.1:{port}"
    workdir = Path(tempfile.mkdtemp(prefix="avisa-ingest-"))
    fresh_url: str | None = None  # made here, dropped on the way out
    try:
        if args.database_url == "postgresql":
            fresh_url = create_postgres()
        database_url = fresh_url or args.database_url
        service, url = start_service(bootstrap, workdir, database_url, args.workers)
        try:
            raw = raw_baseline(bootstrap, args.raw, args.raw_runs)
            single = single_posts(service.pid, url, args.posts, args.connections)
            batch = batch_posts(service.pid, url, args.batches, args.batch, args.batch_connections)
        finally:
            service.terminate()
            service.wait(30)
    finally:
        stop(broker)
        if fresh_url:
            drop_postgres(fresh_url)
    return {
        "single": single,
        "batch": batch,
        "raw": raw,
        "ratio_single_to_raw_pipelined": single["per_s"] / raw["pipelined_per_s"],
        "ratio_batch_to_raw_pipelined": batch["per_s"] / raw["pipelined_per_s"],
        "ratio_batch_to_raw_per_cpu_s": batch["per_service_cpu_s"] / raw["pipelined_per_cpu_s"],
        "connections": args.connections,
        "batch_connections": args.batch_connections,
        "database": "postgresql" if args.database_url else "sqlite",
        "workers": args.workers,
        "load_average": os.getloadavg(),
    }


def _line(name: str, phase: dict[str, Any], unit: str) -> str:
    return (
        f"{name:<13} {phase['per_s']:8.0f} {unit}/s   p50 {phase['p50_ms']:.1f} ms   "
        f"p99 {phase['p99_ms']:.1f} ms   {phase['per_service_cpu_s']:8.0f} {unit} a service "
        f"CPU-second   statuses {phase['statuses']}"
    )


def report(result: dict[str, Any]) -> None:
    single, batch, raw = result["single"], result["batch"], result["raw"]
    load = ", ".join(f"{value:.2f}" for value in result["load_average"])
    print(f"{result['database']}, {result['workers']} worker(s), load average {load}")
    print(_line("single POST", single, "req") + f"   ({result['connections']} connections)")
    print(_line("batch POST", batch, "event") + f"   ({result['batch_connections']} connections)")
    print(
        f"raw pipelined {raw['pipelined_per_s']:8.0f} msg/s"
        f"{'':36}{raw['pipelined_per_cpu_s']:8.0f} msg a producer CPU-second"
        f"   (median of {len(raw['runs'])} runs: "
        + ", ".join(f"{each['pipelined_per_cpu_s']:.0f}" for each in raw["runs"])
        + ")"
    )
    print(f"ratio single/raw pipelined {result['ratio_single_to_raw_pipelined']:.2f}")
    print(f"ratio batch/raw pipelined  {result['ratio_batch_to_raw_pipelined']:.2f}")
    print(f"ratio batch/raw per CPU-second {result['ratio_batch_to_raw_per_cpu_s']:.2f}")
    for name, phase in (("single", single), ("batch", batch)):
        threads = ", ".join(f"{k} {v}" for k, v in phase["cpu_us_by_thread"].items())
        print(f"CPU µs by thread, {name}: {threads}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=6000, help="single-event POSTs")
    parser.add_argument("--connections", type=int, default=64, help="single POSTs in flight")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch", type=int, default=500, help="events a batch")
    parser.add_argument("--batch-connections", type=int, default=4)
    parser.add_argument("--raw", type=int, default=20000, help="raw produce messages")
    parser.add_argument("--raw-runs", type=int, default=3, help="raw runs (median taken)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--database-url",
        default=None,
        help='default: a fresh SQLite file; "postgresql": a fresh database, dropped after',
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    args = parser.parse_args()
    result = run(args)
    report(result)
    path = results_path(f"ingest-{result['database']}", "json")
    path.write_text(json.dumps(result, indent=2))
    print(f"results: {path}")
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
