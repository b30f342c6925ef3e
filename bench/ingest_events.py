"""Ingest throughput of the events service beside raw kafka-python produce on the same broker.

    .venv/bin/python -m bench.ingest_events --posts 3000 --clients 8 --batches 20 --batch 500

Starts Tansu and the real events service (`avisa serve events`: uvicorn, one worker, SQLite)
as processes, then measures from this process, with httpx clients in threads:

- single-event POSTs (structured mode), `--clients` at a time: requests/s, p50/p99 latency;
- batch POSTs of `--batch` events: events/s;
- raw kafka-python produce of the same JSON values on the same broker (acks=all, idempotent):
  one synchronous send per thread with `--clients` threads (the single-POST baseline) and
  pipelined sends with one flush (the batch baseline).

Ratios are the figures to compare across machines. The client threads share the machine
(and its cores) with the service and the broker, so absolute numbers are lower bounds.
Rate limits and the daily cap are raised for the run (they would otherwise stop it at 3,000
requests a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from avisa.broker import free_port, start_tansu, stop
from common.settings import DEV_AGENCY_KEY

ROOT = Path(__file__).resolve().parents[1]
HEADERS = {"Authorization": f"Bearer {DEV_AGENCY_KEY}"}


def make_event(index: int) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"bench-{uuid.uuid4().hex}",
        "source": "demo",
        "type": "license.expiring",
        "subject": f"license/B-{index:08d}",
        "time": "2026-11-29T10:00:00Z",
        "data": {
            "citizen": {
                "id": f"ES-{index:08d}Z",
                "name": "Ana",
                "phone": f"+3460{index % 10_000_000:07d}",
                "email": f"ana{index}@example.es",
                "locale": "es",
                "timezone": "Europe/Madrid",
            },
            "expires_on": "2027-01-15",
        },
    }


def start_service(
    bootstrap: str, workdir: Path, database_url: str | None
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


def in_threads(
    clients: int, work: list[Any], run: Callable[[Any], float]
) -> tuple[float, list[float]]:
    """Run `run` over `work` with `clients` threads; returns elapsed seconds and latencies."""
    latencies: list[float] = []
    lock = threading.Lock()
    items = iter(work)

    def worker() -> None:
        own: list[float] = []
        while True:
            with lock:
                item = next(items, None)
            if item is None:
                break
            own.append(run(item))
        with lock:
            latencies.extend(own)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def single_posts(url: str, count: int, clients: int) -> dict[str, float]:
    bodies = [json.dumps(make_event(i)).encode() for i in range(count)]
    local = threading.local()

    def post(body: bytes) -> float:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, headers=HEADERS, timeout=30)
        started = time.perf_counter()
        response = local.client.post(
            "/v1/events", content=body, headers={"Content-Type": "application/cloudevents+json"}
        )
        response.raise_for_status()
        return time.perf_counter() - started

    post(json.dumps(make_event(0)).encode())  # warm up the connection and the service
    elapsed, latencies = in_threads(clients, bodies, post)
    return {
        "requests": count,
        "per_s": count / elapsed,
        "p50_ms": 1000 * percentile(latencies, 0.50),
        "p99_ms": 1000 * percentile(latencies, 0.99),
    }


def batch_posts(url: str, batches: int, size: int, clients: int) -> dict[str, float]:
    bodies = [
        json.dumps([make_event(b * size + i) for i in range(size)]).encode() for b in range(batches)
    ]
    local = threading.local()

    def post(body: bytes) -> float:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, headers=HEADERS, timeout=120)
        started = time.perf_counter()
        response = local.client.post(
            "/v1/events",
            content=body,
            headers={"Content-Type": "application/cloudevents-batch+json"},
        )
        response.raise_for_status()
        return time.perf_counter() - started

    elapsed, latencies = in_threads(clients, bodies, post)
    return {
        "events": batches * size,
        "per_s": batches * size / elapsed,
        "p50_ms_per_batch": 1000 * percentile(latencies, 0.50),
    }


def _producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=2
    )


def raw_produce(bootstrap: str, count: int, clients: int) -> dict[str, float]:
    """The same values produced straight to the broker, synchronously and pipelined."""
    topic = f"bench-raw-{uuid.uuid4().hex[:6]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 6, 1)])
    admin.close()
    values = [json.dumps(make_event(i)).encode() for i in range(count)]
    producer = _producer(bootstrap)
    producer.send(topic, b"warm-up").get(timeout=30)

    def send_sync(value: bytes) -> float:
        started = time.perf_counter()
        producer.send(topic, key=value[-40:], value=value).get(timeout=30)
        return time.perf_counter() - started

    sync_s, latencies = in_threads(clients, values, send_sync)
    started = time.perf_counter()
    for value in values:
        producer.send(topic, key=value[-40:], value=value)
    producer.flush()
    pipelined_s = time.perf_counter() - started
    producer.close()
    return {
        "sync_per_s": count / sync_s,
        "sync_p50_ms": 1000 * percentile(latencies, 0.50),
        "sync_p99_ms": 1000 * percentile(latencies, 0.99),
        "pipelined_per_s": count / pipelined_s,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    broker = start_tansu(port)
    bootstrap = f"127.0.0.1:{port}"
    workdir = Path(tempfile.mkdtemp(prefix="avisa-ingest-"))
    try:
        service, url = start_service(bootstrap, workdir, args.database_url)
        try:
            raw = raw_produce(bootstrap, args.raw, args.clients)
            single = single_posts(url, args.posts, args.clients)
            batch = batch_posts(url, args.batches, args.batch, args.batch_clients)
        finally:
            service.terminate()
            service.wait(30)
    finally:
        stop(broker)
    return {
        "single": single,
        "batch": batch,
        "raw": raw,
        "ratio_single_to_raw_sync": single["per_s"] / raw["sync_per_s"],
        "ratio_batch_to_raw_pipelined": batch["per_s"] / raw["pipelined_per_s"],
        "clients": args.clients,
        "batch_clients": args.batch_clients,
        "database": "postgresql" if args.database_url else "sqlite",
    }


def report(result: dict[str, Any]) -> None:
    single, batch, raw = result["single"], result["batch"], result["raw"]
    print(
        f"single POST   {single['per_s']:8.0f} req/s   p50 {single['p50_ms']:.1f} ms   "
        f"p99 {single['p99_ms']:.1f} ms   ({single['requests']} requests, "
        f"{result['clients']} clients)"
    )
    print(
        f"raw sync send {raw['sync_per_s']:8.0f} msg/s   p50 {raw['sync_p50_ms']:.1f} ms   "
        f"p99 {raw['sync_p99_ms']:.1f} ms   (same clients)"
    )
    print(
        f"batch POST    {batch['per_s']:8.0f} events/s ({batch['events']} events, "
        f"p50 {batch['p50_ms_per_batch']:.0f} ms a batch)"
    )
    print(f"raw pipelined {raw['pipelined_per_s']:8.0f} msg/s")
    print(f"ratio single/raw sync      {result['ratio_single_to_raw_sync']:.2f}")
    print(f"ratio batch/raw pipelined  {result['ratio_batch_to_raw_pipelined']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=3000, help="single-event POSTs")
    parser.add_argument("--clients", type=int, default=8, help="concurrent single-POST clients")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch", type=int, default=500, help="events a batch")
    parser.add_argument("--batch-clients", type=int, default=2)
    parser.add_argument("--raw", type=int, default=10000, help="raw produce messages")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    args = parser.parse_args()
    result = run(args)
    report(result)
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
