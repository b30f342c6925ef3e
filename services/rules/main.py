"""Builds the rules service: the admin API app, the rule engine consumer, and `run()`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from common.auth import Authenticator, KeyRing
from common.consumer import ConsumerConfig, ConsumerLoop
from common.db import database_reachable, make_engine, make_sessions
from common.db import migrate as migrate_database
from common.health import health_router
from common.jsonguard import JsonGuard
from common.kafka import Producer, broker_reachable, ensure_topics
from common.keyfeed import KeyFeed
from common.logging import configure_logging
from common.metrics import metrics_router
from common.problems import install_problem_handlers
from common.runtime import Worker, freeze_startup_heap, running, serve
from services.rules import api, audit, drafts, history, previews
from services.rules.budget import Limits
from services.rules.citizens import CitizenDirectory, CitizenFeed
from services.rules.config import Settings
from services.rules.consumer import Metrics, RulesHandler
from services.rules.rendering import Renderer
from services.rules.retention import ContentPurger
from services.rules.rulebook import RuleBook
from services.rules.scheduler import Scheduler, SchedulerMetrics
from services.rules.status_relay import StatusRelay
from services.rules.watermarks import WatermarkWriter
from services.rules.withdrawals import WithdrawalMetrics, Withdrawer

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_rules"


def migrate(settings: Settings) -> None:
    """Apply the rules service's pending database migrations."""
    migrate_database(settings.database_url, script_location=MIGRATIONS, version_table=VERSION_TABLE)


def _consumer_loop(
    settings: Settings,
    handler: RulesHandler,
    producer: Producer,
    sessions: sessionmaker[Session],
) -> ConsumerLoop:
    config = ConsumerConfig(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.group_id("rules"),
        topics=[settings.topics.events],
        deadletter_topic=settings.topics.deadletter,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
    )
    return ConsumerLoop(
        config,
        handler,
        producer,
        progress=WatermarkWriter(sessions),
        progress_interval_s=settings.rules_consumer_progress_interval_s,
    )


def _renderer(settings: Settings) -> Renderer:
    limits = Limits(
        max_text_bytes=settings.rules_template_max_bytes,
        max_steps=settings.rules_template_max_steps,
        max_seconds=settings.rules_template_max_seconds,
    )
    return Renderer(
        default_locale=settings.default_locale,
        default_timezone=settings.default_timezone,
        limits=limits,
    )


def create_app(settings: Settings) -> FastAPI:
    """The rules service app; its lifespan connects and starts the rule engine consumer.

    The database must already be migrated (`run()` and `migrate()` do it).
    """
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    scheduler_metrics = SchedulerMetrics(registry)
    withdrawal_metrics = WithdrawalMetrics(registry)
    # Agency keys are learnt from keys.v1 (as the notifier does) only to tell a valid agency
    # key, which may do nothing here (403), from an unknown one (401).
    agency_keys = KeyRing()
    key_feed = KeyFeed(settings.bootstrap_servers, settings.topics.keys, agency_keys)
    authenticator = Authenticator(
        settings.effective_admin_key(), agency_keys, development=settings.development
    )
    renderer = _renderer(settings)
    citizens = CitizenDirectory()
    citizen_feed = CitizenFeed(settings.bootstrap_servers, settings.topics.citizens, citizens)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        sessions = make_sessions(engine)
        producer = Producer(
            settings.bootstrap_servers,
            client_id="avisa-rules",
            ack_timeout_s=settings.kafka_ack_timeout_s,
        )
        rulebook = RuleBook(sessions, refresh_interval_s=settings.rules_refresh_interval_s)
        app.state.engine, app.state.sessions, app.state.rulebook = engine, sessions, rulebook
        app.state.producer = producer
        scheduler = Scheduler(
            sessions=sessions,
            producer=producer,
            topics=settings.topics,
            metrics=scheduler_metrics,
            batch_size=settings.rules_scheduler_batch_size,
            max_sleep_s=settings.rules_scheduler_max_sleep_s,
            watermark_topic=(
                settings.topics.events if settings.rules_scheduler_waits_for_consumer else None
            ),
        )
        app.state.scheduler = scheduler
        background = _background(app, settings, sessions, producer, withdrawal_metrics)
        workers = [
            Worker("rules-citizens", citizen_feed.run, citizen_feed.stop),
            Worker("rules-keys", key_feed.run, key_feed.stop),
        ]
        if settings.rules_scheduler_enabled:
            workers.append(Worker("rules-scheduler", scheduler.run, scheduler.stop))
            workers += background
        if settings.rules_consumer_enabled:
            handler = RulesHandler(
                rulebook=rulebook,
                renderer=renderer,
                producer=producer,
                topics=settings.topics,
                metrics=metrics,
                sessions=sessions,
                default_timezone=settings.default_timezone,
                citizens=citizens,
                on_scheduled=scheduler.poke,
                max_message_bytes=settings.kafka_max_message_bytes,
            )
            app.state.consumer = _consumer_loop(settings, handler, producer, sessions)
            workers.append(_after_citizens(citizen_feed, app.state.consumer))
        app.state.workers = workers  # /readyz names any that died
        freeze_startup_heap()
        try:
            with running(workers):
                yield
        finally:
            producer.close()
            engine.dispose()

    app = FastAPI(title="Avisa rules", version="1", lifespan=lifespan)
    app.state.authenticator = authenticator
    app.state.agency_keys, app.state.key_feed = agency_keys, key_feed
    app.state.renderer = renderer
    app.state.default_timezone = settings.default_timezone
    app.state.citizens, app.state.citizen_feed = citizens, citizen_feed
    install_problem_handlers(app)
    app.add_middleware(JsonGuard, max_depth=settings.json_max_depth)
    app.include_router(
        health_router(
            {
                "database": lambda: database_reachable(app.state.engine),
                "broker": lambda: broker_reachable(settings.bootstrap_servers),
            }
        )
    )
    app.include_router(metrics_router(registry))
    for routes in (api.router, previews.router, drafts.router, history.router, audit.router):
        app.include_router(routes)
    return app


def _background(
    app: FastAPI,
    settings: Settings,
    sessions: sessionmaker[Session],
    producer: Producer,
    metrics: WithdrawalMetrics,
) -> list[Worker]:
    """The status relay, the withdrawal worker and the content purger (kept on
    `app.state`); they run where the scheduler runs."""
    relay = StatusRelay(sessions=sessions, producer=producer, topics=settings.topics)
    app.state.outbox_relay = relay
    withdrawer = Withdrawer(
        sessions=sessions,
        metrics=metrics,
        chunk=settings.rules_withdrawal_chunk,
        on_chunk=relay.poke,
    )
    app.state.withdrawer = withdrawer
    purger = ContentPurger(
        sessions,
        retention=timedelta(days=settings.content_retention_days),
        interval_s=settings.purge_interval_s,
        batch=settings.purge_batch,
    )
    app.state.purger = purger
    return [
        Worker("rules-outbox", relay.run, relay.stop),
        Worker("rules-withdrawals", withdrawer.run, withdrawer.stop),
        Worker("rules-purge", purger.run, purger.stop),
    ]


def run(settings: Settings, *, host: str, port: int) -> None:
    """Migrate, create missing topics, then serve until SIGINT/SIGTERM."""
    configure_logging("rules", settings.log_level)
    settings.check_production_safety()
    migrate(settings)
    ensure_topics(
        settings.bootstrap_servers, settings.topics.all(), partitions=settings.topic_partitions
    )
    serve(create_app(settings), host=host, port=port, timeouts=settings.http_timeouts())


def _after_citizens(feed: CitizenFeed, loop: ConsumerLoop) -> Worker:
    """The rules consumer, started once the citizen feed has caught up: an event read before
    would plan its reminders in the default zone instead of the citizen's preferred one."""

    def run() -> None:
        while not feed.caught_up.wait(0.2):
            if loop.stopping:
                return
        loop.run()

    return Worker("rules-consumer", run, loop.stop)
