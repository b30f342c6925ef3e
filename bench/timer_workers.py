"""The schedulers that `bench.rules_timers` fires timers with: threads or worker processes.

A worker process is what a rules replica runs: the service's own `Scheduler` with its own
database engine and Kafka producer, claiming due timers from the same database as every other
worker (`SKIP LOCKED` on PostgreSQL). The bench talks to it over its stdin and stdout, one
line a command: `start` (reset the CPU clock, look for due timers now), `count` (timers
acknowledged since the last report), `report PATH` (writes a JSON file: ack times by
notification id since the last report, CPU seconds and rounds since `start`), `quit`.

    .venv/bin/python -m bench.timer_workers URL BOOTSTRAP TOPIC_PREFIX BATCH CLIENT_ID
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from common.db import make_engine, make_sessions
from common.kafka import OutgoingMessage, Producer
from schemas.topics import Topics
from services.rules.scheduler import Scheduler, SchedulerMetrics

_ID = re.compile(rb'"id":\s*"([^"]+)"')  # the request's own id comes first in its JSON


class TimingProducer(Producer):
    """Records when each batch of notifications was acknowledged (ids are read afterwards)."""

    acked: list[tuple[float, list[bytes]]]

    def publish(self, messages: Iterable[OutgoingMessage]) -> None:
        batch = list(messages)
        super().publish(batch)
        self.acked.append((time.time(), [m.value for m in batch]))

    def count(self) -> int:
        return sum(len(values) for _, values in self.acked)

    def ack_times(self) -> dict[str, float]:
        found: dict[str, float] = {}
        for at, values in self.acked:
            for value in values:
                match = _ID.search(value)
                if match is not None:
                    found[match.group(1).decode()] = at
        return found


def connected_producer(bootstrap: str, client_id: str, topics: Topics) -> TimingProducer:
    """A producer that already holds its broker connection and producer id."""
    producer = TimingProducer([bootstrap], client_id=client_id)
    producer.acked = []
    producer.publish([OutgoingMessage(topic=topics.status, value=b"{}")])
    producer.acked = []
    return producer


def _scheduler(
    sessions: sessionmaker[Session], producer: Producer, topics: Topics, batch: int
) -> Scheduler:
    return Scheduler(
        sessions=sessions,
        producer=producer,
        topics=topics,
        metrics=SchedulerMetrics(CollectorRegistry()),
        batch_size=batch,
    )


@dataclass
class Fired:
    """What the schedulers did between `start()` and `finish()`."""

    acked: dict[str, float]
    cpu_s: float
    rounds: int


class Schedulers(Protocol):
    """Schedulers that fire the due timers between `start()` and `finish()`."""

    label: str

    def start(self) -> None: ...

    def count(self) -> int: ...

    def finish(self) -> Fired: ...

    def close(self) -> None: ...


class SchedulerThreads:
    """Scheduler threads in this process, each with its own producer; new ones each start."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        producers: list[TimingProducer],
        topics: Topics,
        batch: int,
    ) -> None:
        self.label = f"{len(producers)} scheduler thread(s)"
        self._sessions, self._producers, self._topics = sessions, producers, topics
        self.batch = batch
        self._running: list[tuple[Scheduler, threading.Thread]] = []
        self._cpu = 0.0

    def start(self) -> None:
        for producer in self._producers:
            producer.acked = []
        schedulers = [
            _scheduler(self._sessions, p, self._topics, self.batch) for p in self._producers
        ]
        self._running = [(s, threading.Thread(target=s.run, daemon=True)) for s in schedulers]
        self._cpu = time.process_time()
        for _, thread in self._running:
            thread.start()

    def count(self) -> int:
        return sum(p.count() for p in self._producers)

    def finish(self) -> Fired:
        for scheduler, _ in self._running:
            scheduler.stop()
        for _, thread in self._running:
            thread.join(10)
        acked: dict[str, float] = {}
        for producer in self._producers:
            acked.update(producer.ack_times())
        rounds = sum(s.rounds for s, _ in self._running)
        return Fired(acked, time.process_time() - self._cpu, rounds)

    def close(self) -> None:
        for producer in self._producers:
            producer.close()


class SchedulerProcesses:
    """Worker processes, each a rules replica's scheduler; started once, kept running."""

    def __init__(self, count: int, url: str, bootstrap: str, topics: Topics, batch: int) -> None:
        self.label = f"{count} scheduler process(es)"
        command = [sys.executable, "-m", "bench.timer_workers", url, bootstrap, topics.prefix]
        self._workers = [
            subprocess.Popen(
                [*command, str(batch), f"bench-worker-{n}"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in range(count)
        ]
        for worker in self._workers:
            if _read(worker) != "ready":
                raise RuntimeError("a scheduler worker did not start")

    def _ask(self, command: str) -> list[str]:
        for worker in self._workers:
            _write(worker, command)
        return [_read(worker) for worker in self._workers]

    def start(self) -> None:
        self._ask("start")

    def count(self) -> int:
        return sum(int(answer) for answer in self._ask("count"))

    def finish(self) -> Fired:
        fired = Fired({}, 0.0, 0)
        with tempfile.TemporaryDirectory() as folder:
            paths = [Path(folder) / f"{n}.json" for n in range(len(self._workers))]
            for worker, path in zip(self._workers, paths, strict=True):
                _write(worker, f"report {path}")
            for worker, path in zip(self._workers, paths, strict=True):
                _read(worker)
                report = json.loads(path.read_text())
                fired.acked.update(report["acked"])
                fired.cpu_s += report["cpu_s"]
                fired.rounds += report["rounds"]
        return fired

    def close(self) -> None:
        for worker in self._workers:
            if worker.poll() is None:
                _write(worker, "quit")
        for worker in self._workers:
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def _write(worker: subprocess.Popen[str], line: str) -> None:
    stdin: IO[str] | None = worker.stdin
    assert stdin is not None
    stdin.write(line + "\n")
    stdin.flush()


def _read(worker: subprocess.Popen[str]) -> str:
    stdout: IO[str] | None = worker.stdout
    assert stdout is not None
    line = stdout.readline()
    if not line:
        raise RuntimeError(f"scheduler worker {worker.pid} exited ({worker.poll()})")
    return line.strip()


def serve(url: str, bootstrap: str, prefix: str, batch: int, client_id: str) -> None:
    """A worker process: run one scheduler until `quit`, answering the bench's commands."""
    topics = Topics(prefix)
    engine = make_engine(url)
    producer = connected_producer(bootstrap, client_id, topics)
    scheduler = _scheduler(make_sessions(engine), producer, topics, batch)
    thread = threading.Thread(target=scheduler.run, daemon=True)
    thread.start()
    cpu, rounds = time.process_time(), 0
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "start":
            # `acked` is not cleared here but after each report: timers due before `start`
            # (an insert that overran) may already be sent, and must still be counted.
            cpu, rounds = time.process_time(), scheduler.rounds
            scheduler.poke()
            print("ok", flush=True)
        elif command == "count":
            print(producer.count(), flush=True)
        elif command.startswith("report "):
            report = {
                "acked": producer.ack_times(),
                "cpu_s": time.process_time() - cpu,
                "rounds": scheduler.rounds - rounds,
            }
            Path(command.removeprefix("report ")).write_text(json.dumps(report))
            producer.acked = []
            print("ok", flush=True)
        elif command == "quit":
            break
    scheduler.stop()
    thread.join(10)
    producer.close()
    engine.dispose()


def main(argv: Sequence[str]) -> None:
    url, bootstrap, prefix, batch, client_id = argv
    serve(url, bootstrap, prefix, int(batch), client_id)


if __name__ == "__main__":
    main(sys.argv[1:])
