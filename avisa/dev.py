"""`avisa dev`: the whole system on one machine — broker, three services, demo data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from avisa import admin
from avisa.broker import port_open, start_tansu, stop
from common.settings import DEV_ADMIN_KEY, DEV_AGENCY_KEY
from services.console.config import DEV_STAFF_EMAIL, DEV_STAFF_PASSWORD

SERVICES = {"events": 8001, "rules": 8002, "notifier": 8003, "console": 8000}
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@dataclass
class DevSystem:
    """The processes `avisa dev` runs; stopping it stops them all, services first."""

    root: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start_broker(self) -> None:
        bootstrap = self.env["AVISA_KAFKA_BOOTSTRAP"].split(",")[0]
        host, _, port = bootstrap.rpartition(":")
        if port_open(host or "127.0.0.1", int(port)):
            print(f"Using the Kafka broker already listening on {bootstrap}")
            return
        self.processes["broker"] = start_tansu(int(port), log_path=self.root / "log/broker.log")

    def start_services(self) -> None:
        for name, port in SERVICES.items():
            log = (self.root / f"log/{name}.log").open("ab")
            self.processes[name] = subprocess.Popen(  # noqa: S603 - our own command line
                [sys.executable, "-m", "avisa", "serve", name, "--port", str(port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stopped by us, services first, then the broker
            )

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        for name, port in SERVICES.items():
            while not _ready(port):
                if self.processes[name].poll() is not None:
                    raise RuntimeError(f"{name} exited; see {self.root}/log/{name}.log")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not ready; see {self.root}/log/{name}.log")
                time.sleep(0.2)

    def watch(self) -> None:
        """Wait until Ctrl-C or until a process dies."""
        while True:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with {process.returncode}; stopping", file=sys.stderr)
                    return
            time.sleep(0.5)

    def stop_all(self) -> None:
        for name in [*SERVICES, "broker"]:
            if name in self.processes:
                stop(self.processes[name])


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def development_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("AVISA_ENV", "development")
    env.setdefault("AVISA_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    env.setdefault("AVISA_DATABASE_URL", f"sqlite:///{root}/avisa.db")
    env.setdefault("AVISA_OUTBOX_DIR", str(root / "outbox"))
    env.setdefault("AVISA_KAFKA_SESSION_TIMEOUT_MS", "6000")
    # A newcomer trying the demo at 22:00 should see the SMS now, not at 08:00.
    env.setdefault("AVISA_QUIET_HOURS_DEFAULT", "off")
    return env


def load_demo_rules() -> None:
    with httpx.Client(
        base_url=f"http://127.0.0.1:{SERVICES['rules']}",
        timeout=10,
        headers={"Authorization": f"Bearer {DEV_ADMIN_KEY}"},
    ) as client:
        counts = admin.apply_documents(client, admin.read_documents([EXAMPLES]))
    print(f"Demo rules and templates loaded: {counts}")


CURL_EVENT = {
    "specversion": "1.0",
    "id": "demo-'$(date +%s%N)'",
    "source": "demo",
    "type": "license.expiring",
    "subject": "license/B-12345678",
    "data": {
        "citizen": {
            "id": "ES-12345678Z",
            "name": "Ana",
            "phone": "+34600111222",
            "email": "ana@example.es",
            "locale": "es",
        },
        "expires_on": "2027-01-15",
    },
}


def banner(env: dict[str, str]) -> str:
    outbox = env["AVISA_OUTBOX_DIR"]
    data = json.dumps(CURL_EVENT, ensure_ascii=False, separators=(",", ":"))
    return f"""
Avisa is running (development mode).
  console  http://127.0.0.1:8000/          sign in as {DEV_STAFF_EMAIL} / {DEV_STAFF_PASSWORD}
  events   http://127.0.0.1:8001/docs     admin key:  {DEV_ADMIN_KEY}
  rules    http://127.0.0.1:8002/docs     agency key: {DEV_AGENCY_KEY} (agency "demo")
  notifier http://127.0.0.1:8003/docs
Send the example event (a fresh id each time):
  .venv/bin/avisa send-test-event
or with curl, as in README.md:
  curl -sS -X POST http://127.0.0.1:8001/v1/events \\
    -H 'Authorization: Bearer {DEV_AGENCY_KEY}' \\
    -H 'Content-Type: application/cloudevents+json' \\
    -d '{data}'
SMS and email appear in {outbox}/sms.jsonl and {outbox}/email.jsonl
Default quiet hours are off in development (AVISA_QUIET_HOURS_DEFAULT=21:00-08:00 turns
them on). Logs: {Path(outbox).parent}/log/. Press Ctrl-C to stop.
"""


def _interrupt(_signal: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run_dev(root: Path) -> int:
    """Run everything until Ctrl-C; returns the exit status."""
    root = root.resolve()
    (root / "log").mkdir(parents=True, exist_ok=True)
    env = development_env(root)
    system = DevSystem(root=root, env=env)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        system.start_broker()
        system.start_services()
        system.wait_ready()
        load_demo_rules()
        print(banner(env), flush=True)
        system.watch()
        return 1
    except KeyboardInterrupt:
        print("\nStopping…", flush=True)
        return 0
    finally:
        system.stop_all()
