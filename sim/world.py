"""The simulated deployment: the real rule engine (`RulesHandler`), the real scheduler and the
watermark writer on one SQLite database, the notifier's real delivery decisions, on the bus.

Only the plumbing is simulated: the Kafka client (the `Reader` over the bus), the notifier's
storage (its keyed deliveries become a set of notification ids) and the providers.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from common.consumer import PartitionProgress
from common.db import make_engine, make_sessions
from common.kafka import Producer
from schemas.notifications import Channel, NotificationRequest
from schemas.rules import Rule, Template
from schemas.topics import Topics
from services.notifier import flows as delivery
from services.notifier.preferences import Recipient
from services.notifier.quiet import QuietHours
from services.rules import repository, timers
from services.rules.config import Settings
from services.rules.consumer import Metrics, RulesHandler
from services.rules.documents import canonical
from services.rules.main import migrate
from services.rules.rendering import Renderer
from services.rules.rulebook import RuleBook
from services.rules.scheduler import Scheduler, SchedulerMetrics
from services.rules.watermarks import WatermarkWriter
from sim.bus import Bus, Crash, Reader, Record, SimProducer

TEMPLATE = {
    "id": "renovacion",
    "locales": {
        "es": {
            "sms": "Tu permiso {{ subject }} caduca el {{ data.expires_on | fecha }}",
            "email_subject": "Tu permiso caduca",
            "email_text": "Tu permiso {{ subject }} caduca el {{ data.expires_on | fecha }}.",
        }
    },
}


def _rule(rule_id: str, on: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": rule_id,
        "on": on,
        "schedule": {"relative_to": "data.expires_on", "offsets": ["-P7D", "-P1D"], "at": "09:00"},
        "cancel_on": ["license.renewed"],
        "channels": ["sms", "email"],
        "template": "renovacion",
        **extra,
    }


RULES = [
    _rule("renovacion", "license.expiring"),
    _rule("renovacion-critica", "license.urgent", critical=True),
]


@dataclass(frozen=True, slots=True)
class Send:
    """What a simulated provider took: one message on one channel."""

    notification_id: str
    channel: Channel
    at: datetime
    critical: bool


@dataclass
class Citizen:
    """The notifier's view of one citizen, changed over time by the case."""

    zone: ZoneInfo
    quiet: QuietHours | None = None
    opted_out: set[Channel] = field(default_factory=set)
    email: bool = True


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.now.timestamp()


class Engine:
    """The rule engine: the real handler over a bus reader; commits after flush, then reports
    its progress to the real watermark writer, as `ConsumerLoop` does."""

    def __init__(self, world: World) -> None:
        self._world = world
        self.reader = Reader(world.bus, world.topics.events)
        self.handler = self._handler()
        self.stalled_until: datetime | None = None
        self.crash_next = False
        self.restart_at: datetime | None = None  # a crashed engine is back (and reads) then

    def _handler(self) -> RulesHandler:
        w = self._world
        return RulesHandler(
            rulebook=w.rulebook,
            renderer=w.renderer,
            producer=cast(Producer, w.producer),
            topics=w.topics,
            metrics=w.metrics,
            sessions=w.sessions,
            default_timezone="Europe/Madrid",
            clock=w.clock,
        )

    def step(self) -> None:
        now = self._world.clock()
        if self.stalled_until is not None and now < self.stalled_until:
            return
        if self.restart_at is not None and now < self.restart_at:
            return
        self.restart_at = None
        records = self.reader.pending()
        if records:
            for record in records:
                self.handler.handle(cast(Any, record))
            self.handler.flush()
            if self.crash_next:  # effects durable, offsets not committed: redelivered
                self.crash_next = False
                self.handler = self._handler()
                self.reader.rewind()
                self.restart_at = now + timedelta(milliseconds=500)
                self._world.trace(None, "engine crashed before its commit")
                return
            self.reader.advance(records)
            self.reader.commit()
        self._report(records, now)

    def _report(self, records: list[Record], looked: datetime) -> None:
        last: dict[int, datetime] = {}
        for r in records:
            last[r.partition] = datetime.fromtimestamp(r.timestamp / 1000, UTC)
        progress = []
        for p in range(self._world.bus.partitions):
            lag = self.reader.lag(p)
            until = looked if lag == 0 else last.get(p)
            if until is not None:
                progress.append(
                    PartitionProgress(self.reader.topic, p, self._world.bus.partitions, until, lag)
                )
        self._world.watermarks.record(progress)


class Notifier:
    """The notifier's decisions (`plan_delivery`: expiry, opt-outs, quiet hours) over the
    notification requests on the bus; sends go to the simulated providers."""

    def __init__(self, world: World) -> None:
        self._world = world
        self.reader = Reader(world.bus, world.topics.notifications)
        self.seen: set[str] = set()  # the notifier's deliveries, keyed by notification id
        self.deferred: list[tuple[datetime, str]] = []
        self._requests: dict[str, NotificationRequest] = {}
        self.sends: list[Send] = []
        self.lose_answer: set[str] = set()  # subjects whose provider answers are lost

    def step(self) -> None:
        now = self._world.clock()
        records = self.reader.pending()
        self.reader.advance(records)
        self.reader.commit()
        for record in records:
            request = NotificationRequest.model_validate_json(record.value)
            self._world.published.append((request, now))
            if request.id in self.seen:
                continue  # a duplicate publish: the same notification id, absorbed
            self.seen.add(request.id)
            self._requests[request.id] = request
            self._deliver(request, now)
        while self.deferred and self.deferred[0][0] <= now:
            _, nid = heapq.heappop(self.deferred)
            self._deliver(self._requests[nid], now)

    def next_wake(self) -> datetime | None:
        return self.deferred[0][0] if self.deferred else None

    def _deliver(self, request: NotificationRequest, now: datetime) -> None:
        citizen = self._world.citizens[request.citizen.id]
        person = Recipient(
            citizen_id=request.citizen.id,
            phone=request.citizen.phone,
            email=request.citizen.email if citizen.email else None,
            locale=request.locale,
            zone=citizen.zone,
            quiet=citizen.quiet,
            opted_out=frozenset(citizen.opted_out),
        )
        plan = delivery.plan_delivery(request, now=now, recipient=person)
        if plan.defer_until is not None:
            heapq.heappush(self.deferred, (plan.defer_until, request.id))
            self._world.trace(request.id, f"deferred to {plan.defer_until:%Y-%m-%d %H:%M:%S}Z")
            return
        if plan.final is not None:
            self._world.trace(request.id, f"{plan.final.value}: {plan.detail}")
            return
        for channel in plan.channels[:1]:  # delivery "first": the providers here always take it
            self.sends.append(Send(request.id, channel, now, request.critical))
            if request.event.subject in self.lose_answer:
                # The answer is lost: the notifier reconciles with the provider, which has it,
                # instead of sending again (services/notifier's reconciler).
                self._world.trace(request.id, "provider answer lost; reconciled as sent")


def _no_sync(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA synchronous = OFF")
    cursor.close()


class World:
    """Everything the cases run against, built once per simulation run."""

    def __init__(self, workdir: Path, start: datetime, *, partitions: int, plant: str) -> None:
        self.clock = Clock(start)
        database = f"sqlite:///{workdir / 'sim.db'}"
        migrate(Settings(database_url=database))
        self._engine = make_engine(database)
        # A simulated crash loses memory, not the disk: no fsync needed to keep what was written.
        event.listen(self._engine, "connect", _no_sync)
        self.sessions: sessionmaker[Session] = make_sessions(self._engine)
        self._install(start)
        self.topics = Topics(prefix="sim.")
        self.bus = Bus(partitions)
        self.producer = SimProducer(self.bus, self.clock, crash_topic=self.topics.notifications)
        registry = CollectorRegistry()
        self.metrics = Metrics(registry)
        self._scheduler_metrics = SchedulerMetrics(registry)
        self.rulebook = RuleBook(self.sessions, refresh_interval_s=1e9, clock=self.clock.monotonic)
        self.renderer = Renderer(default_locale="es", default_timezone="Europe/Madrid")
        self.watermarks = WatermarkWriter(self.sessions, clock=self.clock)
        self.plant = plant
        self.citizens: dict[str, Citizen] = {}
        self.published: list[tuple[NotificationRequest, datetime]] = []
        self.traces: dict[str | None, list[str]] = {}
        self.engine = Engine(self)
        self.scheduler = self._scheduler()
        self.scheduler_down_until: datetime | None = None
        self.notifier = Notifier(self)

    def _install(self, now: datetime) -> None:
        with self.sessions() as session, session.begin():
            template = Template.model_validate(TEMPLATE)
            repository.save(
                "template", template.id, canonical(template), actor="sim", now=now, session=session
            )
            for document in RULES:
                rule = Rule.model_validate(document)
                repository.save(
                    "rule", rule.id, canonical(rule), actor="sim", now=now, session=session
                )

    def _scheduler(self) -> Scheduler:
        return Scheduler(
            sessions=self.sessions,
            producer=cast(Producer, self.producer),
            topics=self.topics,
            metrics=self._scheduler_metrics,
            clock=self.clock,
            watermark_topic=None if self.plant == "no-watermark" else self.topics.events,
            skip_recheck=self.plant == "skip-recheck",
        )

    def restarted_scheduler(self) -> Scheduler:
        """A new scheduler process: nothing of the old one's memory."""
        return self._scheduler()

    def trace(self, notification_id: str | None, line: str) -> None:
        self.traces.setdefault(notification_id, []).append(
            f"{self.clock():%Y-%m-%d %H:%M:%S.%f}Z {line}"
        )

    def fire(self) -> None:
        """Scheduler rounds until nothing more is due now; a crash loses the round (its
        transaction rolls back) and a new scheduler takes over."""
        if self.scheduler_down_until is not None and self.clock() < self.scheduler_down_until:
            return
        for _ in range(1000):
            try:
                if self.scheduler.tick() == 0:
                    return
            except Crash:
                self.trace(None, "scheduler crashed after publishing, before its commit")
                self.scheduler = self._scheduler()

    def next_due(self) -> datetime | None:
        with self.sessions() as session:
            return timers.next_due(session=session)

    def close(self) -> None:
        self._engine.dispose()


Later = Callable[[], None]
__all__ = ["Citizen", "Clock", "Send", "World", "timedelta"]
