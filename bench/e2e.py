"""Immediate notifications end to end: events posted to the events service in batches (as fast
as it answers, or paced), each matching `licencia-aviso` (one SMS and one email at once),
counted where the fake providers receive them."""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from avisa.admin import example_event
from bench.system import Stack, cpu_used
from bench.topics import produced_at
from schemas.topics import Topics
from tests.e2e.system import AGENCY_KEY, wait_for


def make_events(count: int, first: int = 0) -> list[dict[str, Any]]:
    """`count` distinct license.expiring events of distinct citizens, phones numbered from
    `first` (runs on the same system must not share phones: latencies are matched by them)."""
    run = uuid.uuid4().hex[:8]
    events = []
    for i in range(count):
        event = example_event(event_id=f"bench-{run}-{i}")
        event["data"]["citizen"]["phone"] = f"+346{first + i:08d}"
        event["data"]["citizen"]["id"] = f"C-{run}-{i}"
        event["subject"] = f"license/{run}-{i}"
        events.append(event)
    return events


def post_events(
    url: str, events: Sequence[dict[str, Any]], batch: int, rate: float = 0.0
) -> list[tuple[float, dict[str, Any]]]:
    """Post in batches (at `rate` events/s when given); each event with its 202 time."""
    accepted: list[tuple[float, dict[str, Any]]] = []
    headers = {
        "Authorization": f"Bearer {AGENCY_KEY}",
        "Content-Type": "application/cloudevents-batch+json",
    }
    started = time.time()
    with httpx.Client(base_url=url, timeout=120, headers=headers) as client:
        for start in range(0, len(events), batch):
            if rate:
                pause = started + start / rate - time.time()
                if pause > 0:
                    time.sleep(pause)
            chunk = events[start : start + batch]
            client.post("/v1/events", content=json.dumps(chunk)).raise_for_status()
            now = time.time()
            accepted += [(now, event) for event in chunk]
    return accepted


def provider_requests(fakes_url: str) -> dict[str, list[dict[str, Any]]]:
    body: dict[str, list[dict[str, Any]]] = httpx.get(
        f"{fakes_url}/_fake/requests", timeout=60
    ).json()["requests"]
    return body


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def latency_summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 0.50),
        "p95": percentile(values, 0.95),
        "p99": percentile(values, 0.99),
        "p999": percentile(values, 0.999),
        "max": max(values),
        "mean": statistics.fmean(values),
        "within_2s": sum(1 for v in values if v <= 2.0) / len(values),
    }


def series(
    started: float,
    accepted: Sequence[float],
    arrivals: Sequence[float],
    sms: Sequence[tuple[float, float]],
) -> dict[str, list[float]]:
    """Per second since `started`: events accepted, messages at the providers, and the
    p50/p99 latency (202 → SMS) of the SMS that arrived that second."""
    end = int(max([*arrivals, *accepted]) - started) + 1
    ingest, messages = [0.0] * end, [0.0] * end
    for at in accepted:
        ingest[int(at - started)] += 1
    for at in arrivals:
        messages[int(at - started)] += 1
    by_second: list[list[float]] = [[] for _ in range(end)]
    for at, latency in sms:
        by_second[int(at - started)].append(latency)
    return {
        "second": list(range(end)),
        "events_accepted": ingest,
        "messages_at_providers": messages,
        "latency_p50": [percentile(v, 0.5) if v else float("nan") for v in by_second],
        "latency_p99": [percentile(v, 0.99) if v else float("nan") for v in by_second],
    }


def profile(pid: int, path: Path) -> subprocess.Popen[bytes]:
    """py-spy (the `bench` extra) sampling `pid` while it holds the GIL, until interrupted:
    where that process's CPU goes."""
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [
            str(spy) if spy.exists() else "py-spy",
            "record",
            "--gil",
            "--format",
            "raw",
            "--rate",
            "100",
            "--pid",
            str(pid),
            "--output",
            str(path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_immediate(
    stack: Stack,
    *,
    events: int,
    batch: int,
    rate: float = 0.0,
    timeout: float = 900.0,
    profile_to: Path | None = None,
    first_phone: int = 0,
) -> dict[str, Any]:
    """Post `events`, wait until every SMS and email reached the fakes; the figures."""
    httpx.post(f"{stack.fakes_url}/_fake/reset", timeout=30)
    items = make_events(events, first_phone)
    spy = None
    if profile_to is not None:
        spy = profile(stack.replicas["notifier"][0].process.pid, profile_to)  # type: ignore[union-attr]
    cpu_before = stack.cpu()
    started = time.time()
    accepted = post_events(stack.url("events"), items, batch, rate)
    ingest_s = time.time() - started

    def all_arrived() -> dict[str, list[dict[str, Any]]] | None:
        found = provider_requests(stack.fakes_url)
        done = min(len(found["twilio"]), len(found["sendgrid"])) >= events
        return found if done else None

    # Not more often: the fakes answer with every request so far, under their lock.
    found = wait_for(all_arrived, timeout=timeout, every=2.0)
    cpu = cpu_used(cpu_before, stack.cpu())
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait()
    accepted_at = {event["data"]["citizen"]["phone"]: at for at, event in accepted}
    sms = [(r["at"], r["at"] - accepted_at[r["form"]["To"]]) for r in found["twilio"]]
    arrivals = [r["at"] for r in found["twilio"] + found["sendgrid"]]
    elapsed = max(arrivals) - started
    messages = len(arrivals)
    stages = stage_latencies(
        stack, accepted_at, {r["form"]["To"]: r["at"] for r in found["twilio"]}
    )
    return {
        "events": events,
        "batch": batch,
        "paced_events_per_s": rate or None,
        "ingest_events_per_s": events / ingest_s,
        "elapsed_s": elapsed,
        "provider_messages": messages,
        "provider_messages_per_s": messages / elapsed,
        "notifications_per_s": events / elapsed,
        "latency_s": latency_summary([latency for _, latency in sms]),
        "cpu_s": cpu,
        "cpu_ms_per_message": {k: round(1000 * v / messages, 3) for k, v in cpu.items()},
        "duplicate_sms": len(found["twilio"]) - len({r["form"]["To"] for r in found["twilio"]}),
        "stages_s": {k: latency_summary(v) for k, v in stages.items() if not k.startswith("_")},
        "series": {
            **series(started, [at for at, _ in accepted], arrivals, sms),
            "requests_on_notifications_topic": per_second(started, stages.pop("_ruled_at")),
        },
    }


def per_second(started: float, moments: list[float]) -> list[float]:
    counts = [0.0] * (int(max(moments, default=started) - started) + 1)
    for at in moments:
        counts[int(at - started)] += 1
    return counts


def stage_latencies(
    stack: Stack, accepted_at: dict[str, float], sms_at: dict[str, float]
) -> dict[str, list[float]]:
    """Per SMS: 202 → notifications.v1 (ingest and the rule engine), notifications.v1 →
    provider (the notifier), keyed by phone; `_ruled_at` holds the raw topic times."""
    topics = Topics(stack.system.topic_prefix)
    ruled = produced_at(stack.bootstrap, topics.notifications, lambda v: v["citizen"]["phone"])
    return {
        "accepted_to_notifications_topic": [
            ruled[p] - at for p, at in accepted_at.items() if p in ruled
        ],
        "notifications_topic_to_sms": [at - ruled[p] for p, at in sms_at.items() if p in ruled],
        "_ruled_at": [ruled[p] for p in accepted_at if p in ruled],
    }
