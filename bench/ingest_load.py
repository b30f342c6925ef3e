"""An asynchronous HTTP load generator for the events service, run in its own process.

    .venv/bin/python -m bench.ingest_load --url http://127.0.0.1:8001 --mode single \
        --count 6000 --connections 64

Builds every request body first, then keeps `--connections` requests in flight (one aiohttp
session, keep-alive) until all are answered, and prints one JSON line: elapsed seconds,
statuses, latency percentiles and this process's own CPU seconds. Running it apart from the
bench keeps the client's CPU out of the process that measures the broker baseline, and many
connections keep the service busy instead of waiting for closed-loop client threads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from typing import Any

import aiohttp

from common.settings import DEV_AGENCY_KEY

CONTENT_TYPES = {
    "single": "application/cloudevents+json",
    "batch": "application/cloudevents-batch+json",
}


def make_event(index: int) -> dict[str, Any]:
    """A realistic event: citizen with phone, email, locale and zone (all validated)."""
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


def bodies(mode: str, count: int, size: int, first: int) -> list[bytes]:
    """Request bodies of events `first`, `first + 1`... (each citizen different: the service
    remembers validated phones and emails, and the bench must not profit from it)."""
    if mode == "single":
        return [json.dumps(make_event(first + i)).encode() for i in range(count)]
    return [
        json.dumps([make_event(first + b * size + i) for i in range(size)]).encode()
        for b in range(count)
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def load(
    url: str,
    mode: str,
    work: list[bytes],
    warm_up: bytes,
    connections: int,
    *,
    wait_for_go: bool = False,
) -> dict[str, Any]:
    headers = {
        "Authorization": f"Bearer {DEV_AGENCY_KEY}",
        "Content-Type": CONTENT_TYPES[mode],
    }
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    items = iter(work)
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:

        async def post(body: bytes) -> None:
            started = time.perf_counter()
            async with session.post("/v1/events", data=body, headers=headers) as response:
                await response.read()
                statuses[response.status] += 1
            latencies.append(time.perf_counter() - started)

        async def client() -> None:
            for body in items:
                await post(body)

        await post(warm_up)  # open a connection, warm the service's key and limit caches
        statuses.clear()
        latencies.clear()
        if wait_for_go:  # the caller reads the service's CPU clock, then says go
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(client() for _ in range(connections)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "requests": len(work),
        "elapsed_s": elapsed,
        "statuses": {str(code): n for code, n in sorted(statuses.items())},
        "p50_ms": 1000 * percentile(latencies, 0.50),
        "p99_ms": 1000 * percentile(latencies, 0.99),
        "client_cpu_s": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", choices=sorted(CONTENT_TYPES), default="single")
    parser.add_argument("--count", type=int, default=6000, help="requests to send")
    parser.add_argument("--size", type=int, default=500, help="events a batch (batch mode)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--first", type=int, default=0, help="index of the first event")
    parser.add_argument("--wait", action="store_true", help="print 'ready', wait for a line")
    args = parser.parse_args()
    work = bodies(args.mode, args.count, args.size, args.first)
    warm_up = bodies("single", 1, 1, args.first + args.count * args.size)[0]
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is pinned; a bare interpreter still works
        result = asyncio.run(
            load(args.url, args.mode, work, warm_up, args.connections, wait_for_go=args.wait)
        )
    else:
        result = uvloop.run(
            load(args.url, args.mode, work, warm_up, args.connections, wait_for_go=args.wait)
        )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
