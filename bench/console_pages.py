"""Server-side render time of the console's pages with many rules and versions.

Runs the rules service and the console in this process (TestClient, one SQLite file), loads
`--rules` rules and enough edits for `--versions` versions in all, signs in, then times each
page `--rounds` times and prints p50/p95/max in milliseconds. Not a test: the issue's bar is a
p95 under 150 ms with 500 rules and 10,000 versions.

    .venv/bin/python -m bench.console_pages --rules 500 --versions 10000
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from common.db import make_engine, make_sessions
from services.console import staff
from services.console.config import Settings as ConsoleSettings
from services.console.main import create_app, migrate
from services.console.web import utcnow
from services.rules.config import Settings as RulesSettings
from services.rules.main import create_app as create_rules_app
from services.rules.main import migrate as migrate_rules

KEY = "bench-admin-key"
SAMPLE = {
    "specversion": "1.0",
    "id": "bench-1",
    "source": "agency-2",
    "type": "license.expiring",
    "subject": "license/1",
    "data": {"citizen": {"id": "c1", "name": "Ana", "phone": "+34600111222"}},
}
AUTH = {"Authorization": f"Bearer {KEY}"}
PAGES = (
    "/",
    "/rules",
    "/rules/rule-0042",
    "/rules/rule-0042/edit",
    "/rules/rule-0042/versions",
    "/rules/rule-0042/diff?from=1&to=20",
    "/templates",
    "/templates/bench",
    "/templates/bench/versions",
    "/audit",
)
POSTS = (
    ("/templates/preview", {"id": "bench", "es.sms": "Hola {{ citizen.name }} ✓"}),
    ("/rules/rule-0042/try", {"event": json.dumps(SAMPLE)}),
)


def _template() -> dict[str, Any]:
    return {"id": "bench", "locales": {"es": {"sms": "Hola {{ citizen.name }}"}}}


def _rule(number: int, edit: int) -> dict[str, Any]:
    return {
        "id": f"rule-{number:04d}",
        "description": f"Regla {number}, edición {edit}",
        "on": "license.expiring",
        "channels": ["sms"],
        "template": "bench",
        "source": f"agency-{number % 20}",
    }


def load(rules: TestClient, count: int, versions: int) -> None:
    rules.put("/v1/templates/bench", json=_template(), headers=AUTH).raise_for_status()
    edits = max(1, versions // count)
    for edit in range(edits):
        for number in range(count):
            answer = rules.put(
                f"/v1/rules/rule-{number:04d}",
                json=_rule(number, edit),
                headers={**AUTH, "Avisa-Actor": f"staff{number % 7}@example.es"},
            )
            answer.raise_for_status()
    print(f"loaded {count} rules, {count * edits} versions")


def _admin(database_url: str) -> None:
    engine = make_engine(database_url)
    db: Session
    with make_sessions(engine).begin() as db:
        staff.add(
            session=db,
            email="bench@example.es",
            password="bench",
            role="admin",
            agency_id=None,
            now=utcnow(),
            with_totp=False,
        )
    engine.dispose()


def time_pages(console: TestClient, rounds: int) -> None:
    page = console.get("/sign-in").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    console.post(
        "/sign-in",
        data={"email": "bench@example.es", "password": "bench", "csrf_token": token.group(1)},
    )
    print(f"{'page':<40} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for path in PAGES:
        _report(f"GET {path}", [_timed(lambda path=path: console.get(path)) for _ in range(rounds)])
    signed = re.search(r'name="csrf_token" value="([^"]+)"', console.get("/").text)
    assert signed is not None
    for path, data in POSTS:
        form = {**data, "csrf_token": signed.group(1)}
        samples = [
            _timed(lambda path=path, form=form: console.post(path, data=form))
            for _ in range(rounds)
        ]
        _report(f"POST {path}", samples)


def _timed(call: Any) -> float:
    started = time.perf_counter()
    answer = call()
    elapsed = (time.perf_counter() - started) * 1000
    assert answer.status_code == 200, answer.text[:300]
    return elapsed


def _report(name: str, samples: list[float]) -> None:
    p95 = statistics.quantiles(samples, n=20)[18]
    print(f"{name:<40} {statistics.median(samples):>8.1f} {p95:>8.1f} {max(samples):>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=500)
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'avisa.db'}"
        rules_settings = RulesSettings(
            database_url=url,
            admin_key=KEY,
            env="development",
            kafka_bootstrap="127.0.0.1:1",
            rules_consumer_enabled=False,
            rules_scheduler_enabled=False,
        )
        console_settings = ConsoleSettings(
            database_url=url, admin_key=KEY, env="development", console_cookie_secure=False
        )
        migrate_rules(rules_settings)
        migrate(console_settings)
        _admin(url)
        with TestClient(create_rules_app(rules_settings)) as rules:
            load(rules, args.rules, args.versions)
            app = create_app(console_settings, http={"rules": rules, "events": rules})
            with TestClient(app) as console:
                time_pages(console, args.rounds)


if __name__ == "__main__":
    main()
