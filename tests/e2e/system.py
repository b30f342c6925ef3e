"""The three services as real processes, for end-to-end and fault tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from avisa.broker import free_port

ADMIN_KEY = "dev-admin-key"
AGENCY_KEY = "demo-agency-key"
TWILIO_SID = "AC" + "1" * 32
TWILIO_FROM = "+15005550006"
SENDGRID_FROM = "avisa@example.gob.es"
ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, every: float = 0.1) -> Any:
    """Poll `condition` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(every)


@dataclass
class Service:
    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "avisa", "serve", self.name, "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 60.0) -> None:
        def check() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited: {self.log_path.read_text()[-3000:]}")
            return self.ready()

        wait_for(check, timeout, every=0.2)

    def restart(self) -> None:
        """Start again on the same port and wait until ready (after `kill` or `stop`)."""
        self.start()
        self.wait_ready()

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flush — a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class System:
    """Events, rules and notifier started against one broker, one database, the fakes."""

    bootstrap: str
    database_url: str
    providers_url: str
    workdir: Path
    topic_prefix: str
    extra_env: dict[str, str] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AVISA_", "TWILIO_", "SENDGRID_"))
        }
        env.update(
            {
                "AVISA_ENV": "development",
                "AVISA_KAFKA_BOOTSTRAP": self.bootstrap,
                "AVISA_TOPIC_PREFIX": self.topic_prefix,
                "AVISA_DATABASE_URL": self.database_url,
                "AVISA_KAFKA_SESSION_TIMEOUT_MS": "6000",
                "AVISA_CONSUMER_GROUP_PREFIX": self.topic_prefix,
                # Tests run at any hour; the default quiet hours are tested in tests/notifier.
                "AVISA_QUIET_HOURS_DEFAULT": "off",
                "AVISA_OUTBOX_DIR": str(self.workdir / "outbox"),
                "TWILIO_ACCOUNT_SID": TWILIO_SID,
                "TWILIO_AUTH_TOKEN": "test-token",
                "TWILIO_FROM_NUMBER": TWILIO_FROM,
                "TWILIO_BASE_URL": self.providers_url,
                "SENDGRID_API_KEY": "SG.test-key",
                "SENDGRID_FROM_EMAIL": SENDGRID_FROM,
                "SENDGRID_BASE_URL": self.providers_url,
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        env = self.environment()
        for name in ("events", "rules", "notifier"):
            self.services[name] = Service(name, free_port(), env, self.workdir / f"{name}.log")
        for service in self.services.values():
            service.start()
        for service in self.services.values():
            service.wait_ready()

    def start_console(self, **env: str) -> Service:
        """The staff console as a process too, calling the three services by their URLs."""
        console_env = {
            **self.environment(),
            "AVISA_EVENTS_URL": self.services["events"].url,
            "AVISA_RULES_URL": self.services["rules"].url,
            "AVISA_NOTIFIER_URL": self.services["notifier"].url,
            **env,
        }
        console = Service("console", free_port(), console_env, self.workdir / "console.log")
        self.services["console"] = console
        console.start()
        console.wait_ready()
        return console

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()

    def logs(self) -> str:
        return "\n".join(
            s.log_path.read_text(errors="replace")
            for s in self.services.values()
            if s.log_path.exists()
        )

    def client(self, name: str, key: str = ADMIN_KEY) -> httpx.Client:
        return httpx.Client(
            base_url=self.services[name].url, timeout=30, headers={"Authorization": f"Bearer {key}"}
        )

    def avisa(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the `avisa` command line against this system."""
        return subprocess.run(
            [sys.executable, "-m", "avisa", *args],
            env=self.environment(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
