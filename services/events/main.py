"""Entry points of the events service: `create_app(settings)` and `run(settings, host, port)`."""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from common import db
from common.auth import Authenticator
from common.consumer import ConsumerConfig, ConsumerLoop
from common.health import health_router
from common.http_timeouts import WorkerProtocol
from common.jsonguard import JsonGuard
from common.kafka import Handler, Producer, broker_reachable, ensure_topics
from common.logging import configure_logging
from common.metrics import metrics_router
from common.problems import install_problem_handlers
from common.runtime import Worker, freeze_startup_heap, running, serve
from services.events import agency_routes, api, audit_routes, key_routes
from services.events.callbacks.decisions import RetryPolicy
from services.events.callbacks.sender import CallbackSender
from services.events.callbacks.targets import callback_client
from services.events.config import Settings
from services.events.consumer import DecisionRecorder, StatusRecorder
from services.events.errors import install_error_handlers
from services.events.eventtypes import routes as eventtype_routes
from services.events.eventtypes.registry import EventTypes
from services.events.intake.batcher import Ingestor
from services.events.keys import KeyLookup, KeyPublisher, ensure_dev_agency
from services.events.limits import DailyCap, Limits, LimitsLookup, RateLimiter
from services.events.metrics import EventMetrics
from services.events.retention import ContentPurger

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_events"


def migrate(settings: Settings) -> None:
    """Apply the events service's pending migrations."""
    db.migrate(settings.database_url, script_location=MIGRATIONS, version_table=VERSION_TABLE)


def _producer(settings: Settings, client_id: str) -> Producer:
    return Producer(
        settings.bootstrap_servers,
        client_id=client_id,
        ack_timeout_s=settings.kafka_ack_timeout_s,
    )


def _consumer_worker(
    settings: Settings, role: str, topic: str, handler: Handler, producer: Producer
) -> tuple[ConsumerLoop, Worker]:
    """A consumer loop of its own group (`<prefix><role>`) over one topic, in a worker."""
    loop = ConsumerLoop(
        ConsumerConfig(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=settings.group_id(role),
            topics=[topic],
            deadletter_topic=settings.topics.deadletter,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        ),
        handler,
        producer,
    )
    return loop, Worker(role, loop.run, loop.stop)


def _sender(settings: Settings, svc: api.Services, client: httpx.Client) -> CallbackSender:
    policy = RetryPolicy(
        base_s=settings.callback_backoff_base_s,
        max_s=settings.callback_backoff_max_s,
        max_attempts=settings.callback_max_attempts,
        suspend_after=timedelta(seconds=settings.callback_suspend_after_s),
    )
    return CallbackSender(
        svc.sessions,
        client=client,
        policy=policy,
        timeout_s=settings.callback_timeout_s,
        poll_s=settings.callback_poll_s,
        batch=settings.callback_batch,
        on_outcome=lambda outcome: svc.metrics.callbacks.labels(outcome=outcome).inc(),
    )


def _key_worker(settings: Settings, svc: api.Services, producer: Producer) -> Worker:
    """Publishes agency key records to keys.v1 (the notifier verifies agency keys with them);
    a revocation here wakes it at once."""
    keys = KeyPublisher(
        svc.sessions,
        producer,
        settings.topics.keys,
        bootstrap_servers=settings.bootstrap_servers,
    )
    svc.key_lookup.listen(keys.wake)
    return Worker("events-keys", keys.run, keys.stop)


def _purger(settings: Settings, svc: api.Services) -> ContentPurger:
    return ContentPurger(
        svc.sessions,
        retention=timedelta(days=settings.content_retention_days),
        interval_s=settings.purge_interval_s,
        batch=settings.purge_batch,
        on_purged=svc.metrics.purged.inc,
    )


def _services(
    settings: Settings, engine: Engine, producer: Producer, metrics: EventMetrics
) -> api.Services:
    sessions = db.make_sessions(engine)
    lookup = KeyLookup(sessions, ttl_s=settings.key_cache_ttl_s)
    limits = LimitsLookup(
        sessions,
        defaults=Limits(settings.requests_per_minute, settings.daily_events),
        ttl_s=settings.limits_cache_ttl_s,
    )
    ingestor = Ingestor(
        sessions=sessions,
        producer=producer,
        topic=settings.topics.events,
        wait_s=settings.duplicate_wait_s,
        stale_s=settings.stale_pending_s,
        retry_after_s=settings.retry_after_s,
        daily_cap=DailyCap(limits),
        max_group_events=settings.ingest_group_events,
        max_in_flight=settings.ingest_groups_in_flight,
        publishers=settings.ingest_groups_in_flight,
        max_record_bytes=settings.max_record_bytes,
    )
    return api.Services(
        settings=settings,
        sessions=sessions,
        authenticator=Authenticator(
            settings.effective_admin_key(), lookup, development=settings.development
        ),
        key_lookup=lookup,
        ingestor=ingestor,
        metrics=metrics,
        limiter=RateLimiter(),
        limits=limits,
        event_types=EventTypes(sessions, ttl_s=settings.event_types_cache_ttl_s),
    )


def create_app(settings: Settings) -> FastAPI:
    """The events service app; its lifespan opens the database, the producer and the consumer."""
    registry = CollectorRegistry()
    metrics = EventMetrics(registry)
    engine_holder: dict[str, Engine] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = engine_holder["engine"] = db.make_engine(settings.database_url)
        # The producer starts over with a fresh client after a broker failure (common.kafka).
        publisher = _producer(settings, "avisa-events")
        app.state.services = svc = _services(settings, engine, publisher, metrics)
        if settings.development:
            ensure_dev_agency(svc.sessions)
        http = callback_client(allow_private=settings.callback_allow_private)
        app.state.callback_sender = sender = _sender(settings, svc, http)
        app.state.services = svc = replace(svc, wake_callbacks=sender.wake)
        recorder = StatusRecorder(
            svc.sessions, on_recorded=metrics.statuses.inc, on_queued=sender.wake
        )
        dead_letters = _producer(settings, "avisa-events-status")
        app.state.status_loop, consumer = _consumer_worker(
            settings, "events-status", settings.topics.status, recorder, dead_letters
        )
        app.state.decision_loop, decisions = _consumer_worker(
            settings,
            "events-decisions",
            settings.topics.decisions,
            DecisionRecorder(svc.sessions),
            dead_letters,
        )
        purger = _purger(settings, svc)
        keys_out = _producer(settings, "avisa-events-keys")
        workers = [
            consumer,
            decisions,
            Worker("events-callbacks", sender.run, sender.stop),
            Worker("events-purge", purger.run, purger.stop),
            _key_worker(settings, svc, keys_out),
        ]
        app.state.workers = workers  # /readyz names any that died
        freeze_startup_heap()
        try:
            with running(workers):
                yield
        finally:
            http.close()
            keys_out.close()
            dead_letters.close()
            svc.ingestor.close()
            publisher.close()
            engine.dispose()

    app = api.EventsApp(
        title="Avisa events",
        version="1",
        lifespan=lifespan,
        description="The agencies' gateway: CloudEvents in, timelines out.",
        # Metrics are Prometheus; FastAPI's OpenTelemetry hooks would only cost a check a request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_problem_handlers(app)
    install_error_handlers(app)
    app.add_middleware(JsonGuard, max_depth=settings.json_max_depth)
    app.include_router(api.router)
    app.include_router(key_routes.router)
    app.include_router(agency_routes.router)
    app.include_router(eventtype_routes.router)
    app.include_router(audit_routes.router)
    app.include_router(
        health_router(
            {
                "database": lambda: (
                    "engine" in engine_holder and db.database_reachable(engine_holder["engine"])
                ),
                "broker": lambda: broker_reachable(settings.bootstrap_servers),
            }
        )
    )
    app.include_router(metrics_router(registry))
    return app


def tune_runtime(settings: Settings) -> None:
    """Process-wide settings of the interpreter for this service (called once a process)."""
    sys.setswitchinterval(settings.gil_switch_interval_s)
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(settings.gc_young_threshold, older, oldest)


def run(settings: Settings, *, host: str, port: int) -> None:
    """Serve the events service: logging, migrations, topics, then uvicorn until stopped."""
    settings.check_production_safety()
    configure_logging("events", settings.log_level)
    tune_runtime(settings)
    migrate(settings)
    ensure_topics(
        settings.bootstrap_servers, settings.topics.all(), partitions=settings.topic_partitions
    )
    if settings.events_workers == 1:
        serve(create_app(settings), host=host, port=port, timeouts=settings.http_timeouts())
        return
    # Worker processes import the app: each builds its settings from the same environment.
    uvicorn.run(
        f"{__name__}:app_from_environment",
        factory=True,
        workers=settings.events_workers,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        http=f"{WorkerProtocol.__module__}:{WorkerProtocol.__name__}",
    )


def app_from_environment() -> FastAPI:
    """The app of one uvicorn worker process (`AVISA_EVENTS_WORKERS` > 1), from the environment."""
    settings = Settings()
    WorkerProtocol.timeouts = settings.http_timeouts()  # this process's connections
    configure_logging("events", settings.log_level)
    tune_runtime(settings)
    return create_app(settings)
