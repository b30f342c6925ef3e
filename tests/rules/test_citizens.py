"""Citizens' preferred zone and locale (citizens.v1): the in-memory map, its use in planning
(event -> citizen preference -> default), and end to end: a preference set through the
notifier's API moves the `at` local time of reminders the rules service plans."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from starlette.testclient import TestClient

from schemas.citizens import CitizenRecord
from services.rules import reminders
from services.rules.citizens import CitizenDirectory, CitizenFeed, Preference
from services.rules.main import _after_citizens, create_app
from services.rules.models import TimerRow
from services.rules.rendering import Renderer
from tests.notifier.kafkatools import eventually
from tests.notifier.test_delivery import ADMIN as NOTIFIER_ADMIN
from tests.notifier.test_delivery import make_settings as notifier_settings
from tests.notifier.test_delivery import running as notifier_running
from tests.rules.factories import ADMIN, make_event, make_rule, make_template
from tests.rules.test_timers import Harness, settings_for

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 1, tzinfo=UTC)
RENDERER = Renderer(default_locale="es", default_timezone="Europe/Madrid")
SCHEDULE = {"relative_to": "data.expires_on", "offsets": ["-P7D"], "at": "09:00"}


def record(citizen_id: str, at: datetime, timezone: str | None, locale: str | None = None):
    return CitizenRecord(citizen_id=citizen_id, timezone=timezone, locale=locale, updated_at=at)


def test_the_newest_record_of_each_citizen_wins_whatever_the_order():
    directory = CitizenDirectory()
    directory.apply(record("ES-1", T0 + timedelta(hours=2), "America/New_York", "en"))
    directory.apply(record("ES-1", T0, "Asia/Tokyo"))  # an older snapshot, late
    directory.apply(record("ES-2", T0, "Atlantic/Canary"))
    assert directory.get("ES-1") == Preference("America/New_York", "en", T0 + timedelta(hours=2))
    directory.apply(record("ES-1", T0 + timedelta(hours=3), None, None))  # preferences cleared
    assert directory.get("ES-1") == Preference(None, None, T0 + timedelta(hours=3))
    naive = record("ES-2", datetime(2026, 11, 2), "Europe/Lisbon")  # read as UTC
    directory.apply(naive)
    assert directory.get("ES-2") == Preference(
        "Europe/Lisbon", None, datetime(2026, 11, 2, tzinfo=UTC)
    )
    assert directory.get("ES-3") is None and len(directory) == 2


def plan_for(citizen: dict, preference: Preference | None):
    plan = reminders.plan_reminders(
        make_rule(schedule=SCHEDULE),
        make_template(),
        make_event(citizen=citizen),
        renderer=RENDERER,
        default_zone="Europe/Madrid",
        now=NOW,
        preference=preference,
    )
    [reminder] = plan.reminders
    return reminder


def test_reminders_use_the_event_zone_then_the_preference_then_the_default():
    new_york = Preference("America/New_York", "en", T0)
    bare = {"timezone": None, "locale": None}
    # 2027-01-15 minus 7 days, at 09:00 local
    in_madrid = datetime(2027, 1, 8, 8, 0, tzinfo=UTC)
    in_new_york = datetime(2027, 1, 8, 14, 0, tzinfo=UTC)
    assert plan_for(bare, None).due == in_madrid
    preferred = plan_for(bare, new_york)
    assert preferred.due == in_new_york
    assert preferred.local == datetime(2027, 1, 8, 9, 0, tzinfo=ZoneInfo("America/New_York"))
    assert preferred.request.locale == "en" and "your licence" in preferred.request.content.sms.body
    event_says = plan_for({"timezone": "Europe/Madrid", "locale": "es"}, new_york)
    assert event_says.due == in_madrid and event_says.request.locale == "es"
    only_zone = plan_for(bare, Preference("America/New_York", None, T0))
    assert only_zone.due == in_new_york and only_zone.request.locale == "es"  # default locale


def test_a_preference_set_in_the_notifier_moves_the_reminders_the_rules_service_plans(
    broker, database_url, tmp_path
):
    rules = settings_for(broker, database_url)
    notifier = notifier_settings(
        broker,
        rules.topic_prefix,
        database_url,
        tmp_path,
        consumer_group_prefix=rules.topic_prefix + "n.",
    )
    harness = Harness(rules)
    app = create_app(rules)
    bare = {"id": "ES-NY", "timezone": None, "locale": None}
    with TestClient(app) as client, notifier_running(notifier) as notifier_client:
        saved = client.put("/v1/templates/licencia-renovacion", json=template(), headers=ADMIN)
        assert saved.status_code == 200, saved.text
        rule = {"on": "license.expiring", "channels": ["sms"], "template": "licencia-renovacion"}
        put = client.put("/v1/rules/aviso", json=rule | {"schedule": SCHEDULE}, headers=ADMIN)
        assert put.status_code == 200, put.text
        assert app.state.consumer.assigned.wait(30)
        harness.publish(id="before", subject="license/1", citizen=bare, expires_on="2030-03-15")
        eventually(lambda: timer_of(app, "before") is not None)

        doc = {"timezone": "America/New_York", "locale": "en", "phone": "+34600999888"}
        prefs = notifier_client.put(
            "/v1/citizens/ES-NY/preferences", json=doc, headers=NOTIFIER_ADMIN
        )
        assert prefs.status_code == 200, prefs.text
        eventually(lambda: app.state.citizens.get("ES-NY") is not None)
        harness.publish(id="after", subject="license/2", citizen=bare, expires_on="2030-03-15")
        eventually(lambda: timer_of(app, "after") is not None)
        before, after = timer_of(app, "before"), timer_of(app, "after")
        learned = app.state.citizens.get("ES-NY")

    assert before is not None and after is not None
    # 2030-03-08 09:00: in Madrid (CET) before the preference, in New York (EST) after it
    assert before[0] == datetime(2030, 3, 8, 8, 0, tzinfo=UTC)
    assert after[0] == datetime(2030, 3, 8, 14, 0, tzinfo=UTC)
    assert (before[1], after[1]) == ("es", "en")
    assert learned.timezone == "America/New_York"
    assert "+34600999888" not in repr(learned)  # no address crossed over


def template() -> dict:
    return {
        "locales": {
            "es": {"sms": "Caduca el {{ data.expires_on | fecha }}"},
            "en": {"sms": "Expires on {{ data.expires_on | fecha }}"},
        }
    }


def timer_of(app, event_id: str) -> tuple[datetime, str] | None:
    with app.state.sessions() as session:
        row = session.scalars(select(TimerRow).where(TimerRow.event_id == event_id)).first()
        if row is None:
            return None
        due = row.due_at if row.due_at.tzinfo else row.due_at.replace(tzinfo=UTC)
        return due.astimezone(UTC), row.payload["locale"]


class _Loop:
    """Stands in for the rules ConsumerLoop: records when it was started."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.stopped = threading.Event()

    @property
    def stopping(self) -> bool:
        return self.stopped.is_set()

    def run(self) -> None:
        self.started.set()

    def stop(self) -> None:
        self.stopped.set()


def test_the_rules_consumer_starts_only_once_the_citizen_feed_has_caught_up():
    feed = CitizenFeed(["127.0.0.1:9"], "citizens", CitizenDirectory())
    loop = _Loop()
    worker = _after_citizens(feed, loop)  # type: ignore[arg-type]
    worker.start()
    assert not loop.started.wait(0.5)  # events would be planned in the default zone
    feed.caught_up.set()
    assert loop.started.wait(5)

    idle = _Loop()
    waiting = _after_citizens(CitizenFeed(["127.0.0.1:9"], "c", CitizenDirectory()), idle)  # type: ignore[arg-type]
    waiting.start()
    waiting.stop(timeout_s=5)
    assert not waiting.alive and not idle.started.is_set()  # a stop while waiting ends it
