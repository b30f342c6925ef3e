"""Notifications/s through the notifier alone, the providers answering after a fixed latency.

Publishes N notification requests (SMS and email each) straight to notifications.v1 with a
raw producer, runs the notifier as a real process, and times until the fake providers have
every request. Repeats for each send concurrency given. Beside it: raw kafka-python produce
on the same broker, in the same run.

    .venv/bin/python -m bench.notifier_throughput --requests 2000 --latency-ms 50 \
        --concurrency 8 32 64 [--profile out.raw]

`--profile` samples the notifier with py-spy while it holds the GIL (one file per
concurrency, the concurrency appended to the name); CPU is split into user and system time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from kafka import KafkaProducer

from avisa.broker import free_port, start_tansu, stop
from bench.e2e import profile
from bench.system import ROOT, start_fakes
from common.kafka import ensure_topics
from schemas.events import Citizen, EventRef
from schemas.notifications import (
    Channel,
    Content,
    EmailContent,
    NotificationRequest,
    RuleRef,
    SmsContent,
)
from schemas.topics import Topics
from tests.e2e.system import Service, System, wait_for


def request(index: int, run: str) -> NotificationRequest:
    citizen = Citizen(
        id=f"{run}-{index}",
        phone=f"+3462{index:07d}",
        email=f"c{index}.{run}@example.es",
        name="Ana",
    )
    return NotificationRequest(
        id=str(uuid.uuid4()),
        event=EventRef(source="bench", id=f"{run}-{index}", type="bench", subject=f"s/{index}"),
        rule=RuleRef(id="bench", version=1),
        citizen=citizen,
        channels=[Channel.SMS, Channel.EMAIL],
        delivery="all",
        content=Content(
            sms=SmsContent(body="Hola"),
            email=EmailContent(subject="Aviso", text="Hola", html="<p>Hola</p>"),
        ),
        locale="es",
        critical=True,
    )


def publish(bootstrap: str, topic: str, requests: list[NotificationRequest]) -> float:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=2
    )
    started = time.perf_counter()
    for item in requests:
        producer.send(topic, key=item.citizen.id.encode(), value=item.model_dump_json().encode())
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.close()
    return len(requests) / elapsed


def start_nodelay_fakes(latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    """The fakes with TCP_NODELAY on every accepted connection (see the module docstring)."""
    code = (
        "import tests.fakes.providers as fakes; "
        "fakes._Handler.disable_nagle_algorithm = True; fakes.main()"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process (every thread), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def one_run(
    bootstrap: str,
    fakes_url: str,
    concurrency: int,
    count: int,
    database_url: str | None,
    *,
    latency_ms: float,
    profile_to: Path | None = None,
) -> dict[str, float]:
    httpx.post(f"{fakes_url}/_fake/reset")
    # The reset forgets the latency the fakes were started with: say it again.
    httpx.post(f"{fakes_url}/_fake/script", json={"latency_ms": latency_ms})
    run = uuid.uuid4().hex[:6]
    workdir = Path(tempfile.mkdtemp(prefix="avisa-bench-notifier-"))
    system = System(
        bootstrap=bootstrap,
        database_url=database_url or f"sqlite:///{workdir}/a.db",
        providers_url=fakes_url,
        workdir=workdir,
        topic_prefix=f"bn{run}.",
        extra_env={
            "AVISA_SEND_CONCURRENCY": str(concurrency),
            "AVISA_SMS_RATE_PER_S": "100000",
            "AVISA_EMAIL_RATE_PER_S": "100000",
            "AVISA_CONSUMER_MAX_POLL_RECORDS": "500",
            "AVISA_SMS_DAILY_CAP": "1000000",
        },
    )
    topics = Topics(system.topic_prefix)
    ensure_topics([bootstrap], topics.all(), partitions=6)
    service = Service("notifier", free_port(), system.environment(), workdir / "notifier.log")
    service.start()
    service.wait_ready()
    try:
        assert service.process is not None
        pid = service.process.pid
        spy = profile(pid, profile_to) if profile_to is not None else None
        user_before, system_before = cpu_split(pid)
        produce_rate = publish(
            bootstrap, topics.notifications, [request(i, run) for i in range(count)]
        )
        started = time.time()

        def done() -> dict | None:
            body = httpx.get(f"{fakes_url}/_fake/requests").json()["requests"]
            return body if len(body["twilio"]) + len(body["sendgrid"]) >= 2 * count else None

        body = wait_for(done, timeout=900, every=2.0)
        last = max(r["at"] for r in body["twilio"] + body["sendgrid"])
        user_after, system_after = cpu_split(pid)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait()
    finally:
        service.stop()
    return {
        "concurrency": concurrency,
        "notifications_per_s": 2 * count / (last - started),
        "raw_produce_per_s": produce_rate,
        "notifier_cpu_ms_per_message": 1000
        * (user_after - user_before + system_after - system_before)
        / (2 * count),
        "notifier_user_ms_per_message": 1000 * (user_after - user_before) / (2 * count),
        "notifier_system_ms_per_message": 1000 * (system_after - system_before) / (2 * count),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument(
        "--nodelay-fakes",
        action="store_true",
        help="fake providers without the ~40 ms delayed-ACK stall per answer",
    )
    parser.add_argument("--profile", default=None, help="py-spy raw output of the notifier")
    args = parser.parse_args()
    port = free_port()
    broker = start_tansu(port)
    fakes, fakes_url = (start_nodelay_fakes if args.nodelay_fakes else start_fakes)(args.latency_ms)
    results = []
    try:
        for concurrency in args.concurrency:
            results.append(
                one_run(
                    f"127.0.0.1:{port}",
                    fakes_url,
                    concurrency,
                    args.requests,
                    args.database_url,
                    latency_ms=args.latency_ms,
                    profile_to=(Path(f"{args.profile}.c{concurrency}") if args.profile else None),
                )
            )
    finally:
        fakes.terminate()
        stop(broker)
    database = "postgresql" if args.database_url else "sqlite"
    if args.nodelay_fakes:
        database += ", nodelay fakes"
    print(
        f"notifier alone ({database}): {args.requests} requests x 2 channels, provider latency "
        f"{args.latency_ms} ms, at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    for r in results:
        ceiling = r["concurrency"] * 1000 / args.latency_ms if args.latency_ms else float("inf")
        print(
            f"  concurrency {r['concurrency']:>3}: {r['notifications_per_s']:8.0f} notifications/s"
            f"  (latency ceiling {ceiling:.0f}/s; raw produce {r['raw_produce_per_s']:.0f} msg/s,"
            f" ratio {r['notifications_per_s'] / r['raw_produce_per_s']:.3f};"
            f" notifier CPU {r['notifier_cpu_ms_per_message']:.2f} ms/message:"
            f" user {r['notifier_user_ms_per_message']:.2f}, system"
            f" {r['notifier_system_ms_per_message']:.2f})"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
