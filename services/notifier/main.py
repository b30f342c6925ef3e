"""Building and running the notifier: the only place that connects to anything."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry

from common.auth import Authenticator, KeyRing
from common.consumer import ConsumerLoop
from common.db import database_reachable, make_engine, make_sessions
from common.db import migrate as migrate_database
from common.design_system import VENDOR_DIR
from common.health import health_router
from common.jsonguard import JsonGuard
from common.kafka import Producer, broker_reachable, ensure_topics
from common.keyfeed import KeyFeed
from common.logging import configure_logging
from common.metrics import metrics_router
from common.problems import Problem, install_problem_handlers, problem_response
from common.runtime import Worker, freeze_startup_heap, running, serve
from schemas.notifications import Channel
from services.notifier import api, citizen_page, tokens, unsubscribe
from services.notifier.citizen_records import CitizenPublisher
from services.notifier.clients import Senders, build_senders
from services.notifier.clients.base import SmsLookup
from services.notifier.clients.sendgrid import SendGridEmail
from services.notifier.clients.twilio import TwilioSms
from services.notifier.config import Settings
from services.notifier.consumer import NotificationHandler, consumer_config
from services.notifier.delivery.admission import Defaults
from services.notifier.delivery.journal import Journal
from services.notifier.delivery.ratelimit import LimitedEmail, LimitedSms, TokenBucket
from services.notifier.delivery.requests import Deliverer, utcnow
from services.notifier.delivery.sending import RetryPolicy
from services.notifier.reports import webhooks
from services.notifier.reports.apply import WebhookContext
from services.notifier.reports.parked import ParkedReports
from services.notifier.reports.reconcile import Reconciler
from services.notifier.repository import SessionFactory
from services.notifier.retention import ContentPurger
from services.notifier.scheduler import Scheduler
from services.notifier.unsubscribe import UnsubscribeContext

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_notifier"


def migrate(settings: Settings) -> None:
    """Apply the notifier's pending migrations."""
    migrate_database(settings.database_url, script_location=MIGRATIONS, version_table=VERSION_TABLE)


def limited(senders: Senders, settings: Settings) -> Senders:
    """Each sender behind its own token bucket (messages per second)."""
    return Senders(
        sms=LimitedSms(
            senders.sms,
            TokenBucket(settings.sms_rate_per_s),
            max_wait_s=settings.delivery_sms_time_limit_s,
        ),
        email=LimitedEmail(
            senders.email,
            TokenBucket(settings.email_rate_per_s),
            max_wait_s=settings.delivery_email_time_limit_s,
        ),
    )


def build_deliverer(
    settings: Settings, sessions: SessionFactory, journal: Journal, senders: Senders
) -> Deliverer:
    return Deliverer(
        sessions=sessions,
        journal=journal,
        senders=limited(senders, settings),
        public_url=settings.public_url,
        token_keys=settings.token_keys(),
        policy=RetryPolicy(
            retries=settings.delivery_retries,
            base_s=settings.delivery_backoff_s,
            cap_s=settings.delivery_max_delay_s,
            sms_limit_s=settings.delivery_sms_time_limit_s,
            email_limit_s=settings.delivery_email_time_limit_s,
            critical_limit_s=settings.delivery_critical_time_limit_s,
        ),
        defaults=defaults(settings),
        settles_in_doubt=settled_in_doubt(settings, senders),
    )


def settled_in_doubt(settings: Settings, senders: Senders) -> frozenset[Channel]:
    """The channels whose lost answers reconciliation can settle: SMS through Twilio (asked
    for the message), email through SendGrid when its events are awaited."""
    channels = set()
    if isinstance(senders.sms, TwilioSms):
        channels.add(Channel.SMS)
    if isinstance(senders.email, SendGridEmail) and settings.sendgrid_event_wait_s is not None:
        channels.add(Channel.EMAIL)
    return frozenset(channels)


def defaults(settings: Settings) -> Defaults:
    """What applies to a citizen when neither the directory nor the event says otherwise."""
    return Defaults(
        zone=settings.default_timezone,
        locale=settings.default_locale,
        quiet=settings.default_quiet_hours,
        sms_daily_cap=settings.sms_daily_cap,
    )


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def build_scheduler(
    settings: Settings,
    sessions: SessionFactory,
    deliverer: Deliverer,
    producer: Producer,
    senders: Senders,
) -> Scheduler:
    lookup: SmsLookup | None = senders.sms if isinstance(senders.sms, TwilioSms) else None
    reconciler = Reconciler(
        sessions=sessions,
        deliverer=deliverer,
        sms_lookup=lookup,
        after_s=settings.reconcile_after_s,
        clock=utcnow,
        defaults=defaults(settings),
        email_evidence_wait=_seconds(settings.sendgrid_event_wait_s),
        # A lost answer is settled once the provider has surely finished with the request.
        doubt_after_s=settings.provider_timeout_s + 5.0,
    )
    return Scheduler(
        sessions=sessions,
        deliverer=deliverer,
        reconciler=reconciler,
        producer=producer,
        topics=settings.topics,
        clock=utcnow,
        interval_s=settings.scheduler_interval_s,
        reconcile_every_s=settings.reconcile_interval_s,
    )


def _record_workers(
    app: FastAPI, settings: Settings, sessions: SessionFactory, producer: Producer
) -> list[Worker]:
    """The workers that keep records for others or for the law: citizens.v1, the purge."""
    publisher = CitizenPublisher(
        sessions,
        producer,
        settings.topics.citizens,
        bootstrap_servers=settings.bootstrap_servers,
        interval_s=settings.citizen_records_interval_s,
    )
    purger = ContentPurger(
        sessions,
        retention=timedelta(days=settings.content_retention_days),
        interval_s=settings.purge_interval_s,
        batch=settings.purge_batch,
    )
    app.state.citizen_publisher, app.state.purger = publisher, purger
    return [
        Worker("notifier-citizens", publisher.run, publisher.stop),
        Worker("notifier-purge", purger.run, purger.stop),
    ]


def _contexts(
    app: FastAPI, settings: Settings, sessions: SessionFactory, producer: Producer
) -> None:
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None
    app.state.webhooks = WebhookContext(
        sessions=sessions,
        producer=producer,
        topics=settings.topics,
        public_url=settings.public_url,
        clock=utcnow,
        twilio_auth_token=token or None,
        sendgrid_public_key=settings.sendgrid_webhook_public_key,
        defaults=defaults(settings),
        sendgrid_timestamp_tolerance_s=settings.sendgrid_webhook_tolerance_s,
    )
    app.state.unsubscribe = UnsubscribeContext(
        sessions=sessions,
        keys=settings.token_keys(),
        max_age=timedelta(days=settings.unsubscribe_token_days),
        default_locale=settings.default_locale,
        clock=utcnow,
        legacy_secret=tokens.legacy_unsubscribe_secret(settings.effective_admin_key())
        if settings.token_legacy_until is not None
        else None,
        legacy_until=settings.token_legacy_until,
    )
    app.state.citizen_page = citizen_page.PageContext(
        sessions=sessions,
        keys=settings.token_keys(),
        max_age=timedelta(days=settings.preferences_token_days),
        default_locale=settings.default_locale,
        clock=utcnow,
        limit=citizen_page.RateLimit(settings.preferences_rate_per_minute),
    )


async def lone_surrogate(request: Request, error: Exception) -> Response:
    """A JSON string escaping half a surrogate pair ("\\ud800") is valid JSON that is no
    text: pydantic raises UnicodeEncodeError while validating it, and nothing could store it.
    It is the client's input, so a 422, never a 500."""
    return problem_response(
        Problem(
            422,
            "Invalid request",
            "a string holds a lone UTF-16 surrogate (such as \\ud800), which is not text",
            kind="validation",
            errors=[{"path": "body", "message": "lone surrogate in a string"}],
        )
    )


def create_app(settings: Settings) -> FastAPI:
    """The notifier app; its lifespan runs the notifications.v1 consumer, the scheduler
    (deferrals, reconciliation, fallbacks) and the keys.v1 feed in worker threads."""
    settings.check_production_safety()
    admin_key = settings.effective_admin_key()
    agency_keys = KeyRing()
    key_feed = KeyFeed(settings.bootstrap_servers, settings.topics.keys, agency_keys)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        sessions = make_sessions(engine)
        producer = Producer(
            settings.bootstrap_servers,
            client_id=settings.group_id("notifier"),
            ack_timeout_s=settings.kafka_ack_timeout_s,
        )
        senders = build_senders(settings)
        journal = Journal(engine)
        deliverer = build_deliverer(settings, sessions, journal, senders)
        handler = NotificationHandler(
            deliverer=deliverer,
            producer=producer,
            topics=settings.topics,
            sessions=sessions,
            journal=journal,
            concurrency=settings.send_concurrency,
        )
        loop = ConsumerLoop(consumer_config(settings), handler, producer)
        scheduler = build_scheduler(settings, sessions, deliverer, producer, senders)
        _contexts(app, settings, sessions, producer)
        parked_reports = ParkedReports(app.state.webhooks)
        workers = [
            Worker("notifier-consumer", loop.run, loop.stop),
            Worker("notifier-scheduler", scheduler.run, scheduler.stop),
            Worker("notifier-keys", key_feed.run, key_feed.stop),
            Worker("notifier-parked-reports", parked_reports.run, parked_reports.stop),
            *_record_workers(app, settings, sessions, producer),
        ]
        app.state.engine, app.state.sessions, app.state.consumer = engine, sessions, loop
        app.state.scheduler, app.state.parked_reports = scheduler, parked_reports
        app.state.workers = [*workers, journal]  # /readyz names any that died
        freeze_startup_heap()
        try:
            with running(workers):
                yield
        finally:
            handler.close()
            journal.close()
            producer.close()
            engine.dispose()

    app = FastAPI(title="Avisa notifier", version="0.1.0", lifespan=lifespan)
    app.state.authenticator = Authenticator(
        admin_key, agency_keys, development=settings.development
    )
    app.state.agency_keys = agency_keys
    app.state.key_feed = key_feed
    install_problem_handlers(app)
    app.add_exception_handler(UnicodeEncodeError, lone_surrogate)
    app.add_middleware(JsonGuard, max_depth=settings.json_max_depth, depth_only=("/v1/providers/",))
    app.include_router(
        health_router(
            {
                "database": lambda: database_reachable(app.state.engine),
                "broker": lambda: broker_reachable(settings.bootstrap_servers),
                "agency_keys": key_feed.caught_up.is_set,
            }
        )
    )
    app.include_router(metrics_router(CollectorRegistry()))
    app.include_router(api.router)
    app.include_router(webhooks.router)
    app.include_router(unsubscribe.router)
    app.include_router(citizen_page.router)
    app.mount("/static/vendor", StaticFiles(directory=VENDOR_DIR), name="design-system")
    return app


def run(settings: Settings, *, host: str, port: int) -> None:
    """Configure logging, migrate, create missing topics, then serve until stopped."""
    configure_logging("notifier", settings.log_level)
    migrate(settings)
    ensure_topics(
        settings.bootstrap_servers, settings.topics.all(), partitions=settings.topic_partitions
    )
    serve(create_app(settings), host=host, port=port, timeouts=settings.http_timeouts())
