"""The whole system for a benchmark: Tansu, the fake providers (own process), the services as
processes (optionally several replicas of one), a fresh database; and CPU time per process."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from avisa.broker import free_port, start_tansu, stop
from tests.e2e.system import Service, System

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
# The production defaults protect real provider accounts (10 messages/s per sender) and keep
# a poll batch small; the benchmark measures the system, so the senders' limits are lifted,
# the send pool widened and the poll batch made as large as the pool can keep busy.
THROUGHPUT_ENV = {
    "AVISA_SMS_RATE_PER_S": "100000",
    "AVISA_EMAIL_RATE_PER_S": "100000",
    "AVISA_SEND_CONCURRENCY": "32",
    "AVISA_CONSUMER_MAX_POLL_RECORDS": "500",
    "AVISA_REQUESTS_PER_MINUTE": "1000000",
    "AVISA_DAILY_EVENTS": "100000000",
    "AVISA_LOG_LEVEL": "WARNING",
}


def start_fakes(latency_ms: float) -> tuple[subprocess.Popen[str], str]:
    """The fake Twilio and SendGrid in a process of their own; their base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.providers", "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def create_postgres() -> str:
    """A fresh PostgreSQL database on 127.0.0.1:5432; its SQLAlchemy URL."""
    name = f"avisa_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_postgres(url: str) -> None:
    name = url.rsplit("/", 1)[-1]
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (every thread), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Stack:
    """A running system: `replicas` by service name, and the pids worth metering."""

    bootstrap: str
    fakes_url: str
    system: System
    replicas: dict[str, list[Service]] = field(default_factory=dict)
    others: dict[str, int] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return self.replicas[name][0].url

    def pids(self) -> dict[str, int]:
        pids = dict(self.others)
        for name, services in self.replicas.items():
            for i, service in enumerate(services):
                assert service.process is not None
                pids[f"{name}{i + 1 if len(services) > 1 else ''}"] = service.process.pid
        return pids

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each process of the system (and this one, `driver`)."""
        return {name: cpu_seconds(pid) for name, pid in self.pids().items()}


def cpu_used(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before.get(name, 0.0), 2) for name in after}


@contextlib.contextmanager
def running_stack(
    *,
    database_url: str | None = None,
    latency_ms: float = 0.0,
    replicas: Mapping[str, int] | None = None,
    extra_env: Mapping[str, str] | None = None,
    services: Sequence[str] = ("events", "rules", "notifier"),
    prepare: Callable[[str], None] | None = None,
) -> Iterator[Stack]:
    """Broker, fakes and `services` (with `replicas` of each), stopped on the way out.
    `database_url` "postgresql" makes (and afterwards drops) a fresh PostgreSQL database;
    None uses a SQLite file. `prepare` gets the database URL before any service starts."""
    port = free_port()
    broker = start_tansu(port)
    fakes, fakes_url = start_fakes(latency_ms)
    workdir = Path(tempfile.mkdtemp(prefix="avisa-bench-"))
    url = create_postgres() if database_url == "postgresql" else database_url
    system = System(
        bootstrap=f"127.0.0.1:{port}",
        database_url=url or f"sqlite:///{workdir}/avisa.db",
        providers_url=fakes_url,
        workdir=workdir,
        topic_prefix="bench.",
        extra_env={**THROUGHPUT_ENV, **(extra_env or {})},
    )
    stack = Stack(
        bootstrap=system.bootstrap,
        fakes_url=fakes_url,
        system=system,
        others={"broker": broker.pid, "fakes": fakes.pid, "driver": os.getpid()},
    )
    try:
        if prepare is not None:
            prepare(system.database_url)
        _start(stack, services, replicas or {})
        yield stack
    finally:
        for group in stack.replicas.values():
            for service in group:
                service.stop()
        fakes.terminate()
        stop(broker)
        if url and database_url == "postgresql":
            drop_postgres(url)
        shutil.rmtree(workdir, ignore_errors=True)


def _start(stack: Stack, services: Sequence[str], replicas: Mapping[str, int]) -> None:
    env = stack.system.environment()
    workdir = stack.system.workdir
    for name in services:
        count = replicas.get(name, 1)
        stack.replicas[name] = [
            Service(name, free_port(), env, workdir / f"{name}{i}.log") for i in range(count)
        ]
        # The first replica runs the migrations; the others start once it is serving.
        stack.system.services[name] = stack.replicas[name][0]
    for group in stack.replicas.values():
        group[0].start()
    for group in stack.replicas.values():
        group[0].wait_ready()
    for group in stack.replicas.values():
        for service in group[1:]:
            service.start()
    for group in stack.replicas.values():
        for service in group[1:]:
            service.wait_ready()


def settle(seconds: float) -> None:
    """Give consumer groups time to balance after replicas joined (no assignment endpoint)."""
    time.sleep(seconds)
