"""Builds the staff console: `create_app(settings)`, `migrate()` and `run()`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from common.db import database_reachable, make_engine, make_sessions
from common.db import migrate as migrate_database
from common.health import health_router
from common.logging import configure_logging
from common.runtime import serve
from services.console import i18n, repository, roles, staff
from services.console.clients.services import build_clients
from services.console.config import DEV_STAFF_EMAIL, DEV_STAFF_PASSWORD, Settings
from services.console.errors import crash_page, install_error_pages
from services.console.pages import agencies, audit, auth, home, rules, templates, trial, versions
from services.console.rendering import Pages
from services.console.security import Signer, secure
from services.console.sessions import Lifetime
from services.console.web import Console, utcnow

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_console"
STATIC = Path(__file__).parent / "static"

PAGE_MODULES = (auth, home, agencies, audit, rules, trial, templates, versions)
"""Each has a `router` and an `ACCESS` role table; a new screen is one more module here."""


def migrate(settings: Settings) -> None:
    """Apply the console's pending database migrations (its own `console_` tables)."""
    migrate_database(settings.database_url, script_location=MIGRATIONS, version_table=VERSION_TABLE)


def ensure_demo_account(console: Console) -> None:
    """Development mode: the demo admin that `make run` prints, without a security code."""
    if not console.settings.development:
        return
    with console.database().begin() as db:
        if repository.staff_by_email(session=db, email=DEV_STAFF_EMAIL) is None:
            staff.add(
                session=db,
                email=DEV_STAFF_EMAIL,
                password=DEV_STAFF_PASSWORD,
                role="admin",
                agency_id=None,
                now=utcnow(),
                with_totp=False,
            )


def create_app(settings: Settings, *, http: Mapping[str, httpx.Client] | None = None) -> FastAPI:
    """The console app; the database must already be migrated (`run()` and `migrate()` do it).

    `http` replaces the connection pools to the services (tests pass their in-process apps).
    """
    signer = Signer(settings.effective_secret())
    console = Console(
        settings=settings,
        signer=signer,
        pages=Pages(i18n.load_translations(), signer=signer, zone=settings.default_timezone),
        services=build_clients(settings, http),
        access=roles.merge(module.ACCESS for module in PAGE_MODULES),
        lifetime=Lifetime(
            idle=timedelta(minutes=settings.console_idle_minutes),
            absolute=timedelta(hours=settings.console_absolute_hours),
        ),
        throttle=staff.Throttle(
            after=settings.console_lockout_after,
            first=timedelta(seconds=settings.console_lockout_seconds),
        ),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        console.db = make_sessions(engine)
        app.state.engine = engine
        ensure_demo_account(console)
        try:
            yield
        finally:
            console.services.close()
            engine.dispose()

    app = FastAPI(
        title="Avisa console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.console = console

    @app.middleware("http")
    async def _secure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        return await secure(
            request,
            call_next,
            signer=signer,
            secure_cookies=console.secure_cookies,
            on_crash=crash_page,
        )

    install_error_pages(app)
    app.include_router(health_router({"database": lambda: database_reachable(app.state.engine)}))
    for module in PAGE_MODULES:
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def run(settings: Settings, *, host: str, port: int) -> None:
    """Migrate, then serve until SIGINT/SIGTERM."""
    configure_logging("console", settings.log_level)
    settings.check_console_safety()
    migrate(settings)
    serve(create_app(settings), host=host, port=port)
