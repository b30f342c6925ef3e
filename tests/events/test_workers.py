"""`AVISA_EVENTS_WORKERS=2`: two uvicorn worker processes behind one port, each a replica.

Same events sent twice at once, over many connections, so both processes take requests and
race each other for the same (source, id) keys: every event is published exactly once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from avisa.broker import free_port
from tests.events.conftest import DEMO, STRUCTURED, make_event, make_settings, read_topic

pytestmark = pytest.mark.e2e  # starts the service as a process

ROOT = Path(__file__).resolve().parents[2]


def _workers(pid: int) -> list[int]:
    """Child processes of the server that run uvicorn workers (multiprocessing spawn)."""
    children = [
        int(child)
        for task in Path(f"/proc/{pid}/task").glob("*/children")
        for child in task.read_text().split()
    ]
    return [
        child for child in children if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the events service did not get ready: {log.read_text()[-3000:]}")


def _post(url: str, body: bytes) -> httpx.Response:
    with httpx.Client(base_url=url, headers=DEMO, timeout=30) as client:  # a connection each
        return client.post("/v1/events", content=body, headers={"Content-Type": STRUCTURED})


def test_two_worker_processes_publish_every_event_exactly_once(
    broker, topic_prefix, database_url, tmp_path
):
    settings = make_settings(broker.bootstrap, topic_prefix, database_url)
    port, log = free_port(), tmp_path / "events.log"
    env = {
        **os.environ,
        "AVISA_KAFKA_BOOTSTRAP": broker.bootstrap,
        "AVISA_TOPIC_PREFIX": topic_prefix,
        "AVISA_CONSUMER_GROUP_PREFIX": topic_prefix,
        "AVISA_DATABASE_URL": database_url,
        "AVISA_ENV": "development",
        "AVISA_TOPIC_PARTITIONS": "3",
        "AVISA_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "AVISA_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
        "AVISA_EVENTS_WORKERS": "2",
    }
    command = [sys.executable, "-m", "avisa", "serve", "events", "--port", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log)
        assert len(_workers(process.pid)) == 2
        events = [make_event() for _ in range(30)]
        bodies = [json.dumps(event).encode() for event in events] * 2
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda body: _post(url, body), bodies))
    finally:
        process.terminate()
        process.wait(30)
    assert [answer.status_code for answer in answers] == [202] * 60
    assert sum(answer.json()["accepted"] for answer in answers) == 30
    assert sum(answer.json()["duplicates"] for answer in answers) == 30
    published = Counter(
        json.loads(record.value)["id"]
        for record in read_topic(broker.bootstrap, settings.topics.events)
    )
    assert published == Counter(event["id"] for event in events)
