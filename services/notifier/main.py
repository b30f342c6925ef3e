"""Building and running the notifier: the only place that connects to anything."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from common.auth import Authenticator
from common.consumer import ConsumerLoop
from common.db import database_reachable, make_engine, make_sessions, upgrade
from common.health import health_router
from common.kafka import Producer, broker_reachable, ensure_topics
from common.logging import configure_logging
from common.metrics import metrics_router
from common.problems import install_problem_handlers
from common.runtime import Worker, serve
from services.notifier import api, tokens
from services.notifier.clients import build_senders
from services.notifier.config import Settings
from services.notifier.consumer import NotificationHandler, consumer_config
from services.notifier.delivery import Deliverer, RetryPolicy

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_notifier"


def migrate(settings: Settings) -> None:
    """Apply the notifier's pending migrations."""
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine, script_location=MIGRATIONS, version_table=VERSION_TABLE)
    finally:
        engine.dispose()


def create_app(settings: Settings) -> FastAPI:
    """The notifier app; its lifespan runs the notifications.v1 consumer in a worker thread."""
    settings.check_production_safety()
    admin_key = settings.effective_admin_key()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        sessions = make_sessions(engine)
        producer = Producer(
            settings.bootstrap_servers,
            client_id=settings.group_id("notifier"),
            ack_timeout_s=settings.kafka_ack_timeout_s,
        )
        deliverer = Deliverer(
            sessions=sessions,
            senders=build_senders(settings),
            public_url=settings.public_url,
            unsubscribe_secret=tokens.unsubscribe_secret(admin_key),
            policy=RetryPolicy(
                retries=settings.delivery_retries,
                base_s=settings.delivery_backoff_s,
                cap_s=settings.delivery_max_delay_s,
            ),
        )
        handler = NotificationHandler(
            deliverer=deliverer, producer=producer, topics=settings.topics, sessions=sessions
        )
        loop = ConsumerLoop(consumer_config(settings), handler, producer)
        worker = Worker("notifier-consumer", loop.run, loop.stop)
        app.state.engine, app.state.sessions, app.state.consumer = engine, sessions, loop
        worker.start()
        try:
            yield
        finally:
            worker.stop()
            producer.close()
            engine.dispose()

    app = FastAPI(title="Avisa notifier", version="0.1.0", lifespan=lifespan)
    app.state.authenticator = Authenticator(admin_key)
    install_problem_handlers(app)
    app.include_router(
        health_router(
            {
                "database": lambda: database_reachable(app.state.engine),
                "broker": lambda: broker_reachable(settings.bootstrap_servers),
            }
        )
    )
    app.include_router(metrics_router(CollectorRegistry()))
    app.include_router(api.router)
    return app


def run(settings: Settings, *, host: str, port: int) -> None:
    """Configure logging, migrate, create missing topics, then serve until stopped."""
    configure_logging("notifier", settings.log_level)
    migrate(settings)
    ensure_topics(
        settings.bootstrap_servers, settings.topics.all(), partitions=settings.topic_partitions
    )
    serve(create_app(settings), host=host, port=port)
