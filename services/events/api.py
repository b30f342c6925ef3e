"""HTTP routes of the events service: agencies and keys, event intake, and tracking."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from common.auth import (
    Authenticator,
    Principal,
    bearer_key,
    hash_key,
    require_admin,
)
from common.jsonguard import intake_problem
from common.problems import Problem
from schemas.events import CloudEvent
from services.events import openapi, repository, views
from services.events.config import Settings
from services.events.errors import Ambiguous, NotFound
from services.events.eventtypes.registry import EventTypes
from services.events.intake import binding
from services.events.intake.batcher import Ingestor, Outcome
from services.events.keys import KeyLookup
from services.events.limits import LimitsLookup, RateLimiter, too_many_requests
from services.events.metrics import EventMetrics


@dataclass(frozen=True, slots=True)
class Services:
    """What the routes need, built once in `main.create_app` and kept in `app.state.services`."""

    settings: Settings
    sessions: sessionmaker[Session]
    authenticator: Authenticator
    key_lookup: KeyLookup
    ingestor: Ingestor
    metrics: EventMetrics
    limiter: RateLimiter
    limits: LimitsLookup
    event_types: EventTypes
    wake_callbacks: Callable[[], None] = field(default=lambda: None)


async def services(request: Request) -> Services:
    """The app's services (async: no threadpool hop for a lookup that cannot block)."""
    found: Services = request.app.state.services
    return found


async def authenticated(request: Request, svc: Annotated[Services, Depends(services)]) -> Principal:
    """The caller (401 without a valid key); agency keys are held to their rate (429).

    Answered in the event loop when the key and its limits are cached (no thread hop for the
    common case), in the threadpool when the database must be asked."""
    cached = _cached_agency(request, svc)
    if cached is not None:
        return cached
    return await run_in_threadpool(_authenticate, request, svc)


def _cached_agency(request: Request, svc: Services) -> Principal | None:
    """An agency caller known without the database, held to its rate; None: ask the slow way
    (the admin key, an unknown or malformed key, limits not cached)."""
    key = bearer_key(request)
    if key is None:
        return None
    key_hash = hash_key(key)  # once: the lookup and the token bucket share it
    agency_id = svc.key_lookup.cached(key_hash)
    limits = svc.limits.cached(agency_id) if agency_id is not None else None
    if agency_id is None or limits is None or svc.authenticator.is_admin_key(key):
        return None
    if svc.authenticator.refuses(key_hash):  # the slow way answers 401
        return None
    _hold_to_rate(svc, key_hash, limits.requests_per_minute)
    return Principal(role="agency", agency_id=agency_id)


def _authenticate(request: Request, svc: Services) -> Principal:
    principal = svc.authenticator.principal(request)
    if principal.agency_id is not None and not principal.is_admin:
        per_minute = svc.limits(principal.agency_id).requests_per_minute
        _hold_to_rate(svc, hash_key(bearer_key(request) or ""), per_minute)
    return principal


def _hold_to_rate(svc: Services, key_hash: str, per_minute: int) -> None:
    wait_s = svc.limiter.wait_s(key_hash, per_minute)
    if wait_s > 0:
        svc.metrics.rate_limited.inc()
        raise too_many_requests(wait_s, per_minute)


def admin(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
    return require_admin(principal)


Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Principal, Depends(authenticated)]
Admin = Annotated[Principal, Depends(admin)]

router = APIRouter()


def _now() -> datetime:
    return datetime.now(UTC)


# --- agencies (their routes: key_routes.py, agency_routes.py) ------------------------------


def for_agency(principal: Principal, agency_id: str) -> None:
    """Admins act for every agency; an agency key only for its own (403 otherwise)."""
    if not principal.is_admin and principal.agency_id != agency_id:
        raise Problem(403, "Forbidden", "this key belongs to another agency", kind="forbidden")


def require_agency(session: Session, agency_id: str) -> None:
    """404 unless the agency exists."""
    if repository.get_agency(session=session, agency_id=agency_id) is None:
        raise NotFound(f"no agency '{agency_id}'")


# --- intake ---------------------------------------------------------------------------------


async def envelope(request: Request, svc: Services) -> binding.Envelope:
    """The request's binding mode (415 first) and raw body, read up to the size limit (413)."""
    headers = request.headers  # case-insensitive, names already lower case (ASGI)
    mode = binding.mode_for(headers)
    limit = svc.settings.max_body_bytes
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = b""
    async for chunk in request.stream():
        body += chunk  # one chunk for most requests: no copy into a growing buffer
        if len(body) > limit:
            raise _too_large(limit)
    return binding.Envelope(mode=mode, body=body, headers=headers)


def _too_large(limit: int) -> Problem:
    # Made only when raised: building it for every request cost a few µs each.
    return Problem(
        413, "Request too large", f"the body may have at most {limit} bytes", kind="too-large"
    )


def _may_publish(principal: Principal, events: list[CloudEvent]) -> None:
    for event in events:
        if not principal.may_publish_for(event.source):
            raise Problem(
                403,
                "Forbidden",
                f"this key may not publish events from source '{event.source}'",
                kind="forbidden",
            )


def accepted_body(outcome: Outcome) -> bytes:
    """The 202's JSON, as `json.dumps` writes it, without its Python-level encoder."""
    ids = ", ".join(map(encode_basestring_ascii, outcome.ids))
    return b'{"accepted":%d,"duplicates":%d,"ids":[%s]}' % (
        outcome.accepted,
        outcome.duplicates,
        ids.encode(),
    )


async def accept(request: Request) -> Outcome:
    """Accept CloudEvents (structured, batch or binary) once the broker acknowledged them."""
    # Parsing and validating is CPU work: a thread would not make it faster, only add a hop.
    # Only cache misses (database reads) go to the threadpool.
    svc: Services = request.app.state.services
    principal = await authenticated(request, svc)
    request_body = await envelope(request, svc)
    hostile = intake_problem(request_body.body, svc.settings.json_max_depth)
    if hostile is not None:
        raise hostile
    events = binding.validate(request_body, max_batch=svc.settings.max_batch)
    _may_publish(principal, events)
    batch = request_body.mode is binding.Mode.BATCH
    if svc.event_types.needs_check(events):  # off the loop: an agency's schema is its own code
        await run_in_threadpool(svc.event_types.check, events, batch=batch)
    outcome = await svc.ingestor.accept_async(events, batch=batch)
    svc.metrics.accepted.inc(outcome.accepted)
    svc.metrics.duplicates.inc(outcome.duplicates)
    return outcome


@router.post(
    "/v1/events",
    status_code=202,
    tags=["events"],
    response_model=views.Accepted,
    responses={401: {}, 403: {}, 409: {}, 413: {}, 415: {}, 422: {}, 429: {}, 503: {}},
    openapi_extra=openapi.PUBLISH_REQUEST,
)
async def publish_events(request: Request) -> Response:
    """Accept CloudEvents (structured, batch or binary); 202 once the broker acknowledged.

    Served by `EventsApp.__call__`, ahead of the middleware stack, wherever the app is an
    `EventsApp` (this route then only documents it): `accept` applies JsonGuard's check
    itself and errors go to the app's exception handlers. A new middleware must be added
    there too (tests/events/test_hot_path.py pins the list)."""
    outcome = await accept(request)
    return Response(accepted_body(outcome), status_code=202, media_type="application/json")


class EventsApp(FastAPI):
    """The events service's app: `POST /v1/events` is served before the middleware stack.

    Routing, dependency solving and the stack's layers cost more than validating a single
    event; the intake skips them (the route above still documents it, and serves it where
    this class is not used). Errors are rendered by the app's own exception handlers; an
    unexpected one gets the app's catch-all answer and is raised on to the server, as the
    stack's outermost layer (Starlette's ServerErrorMiddleware) does for any route. The one
    middleware the app has, `JsonGuard`, is applied by `accept` (`intake_problem`); any other
    would be skipped here, which a test refuses.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/events" or scope["method"] != "POST":
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self  # what Starlette sets, and `Request.app` reads
        request = Request(scope, receive)
        try:
            outcome = await accept(request)
        except Exception as error:
            await self._answer_error(request, error, send)
            return
        body = accepted_body(outcome)
        await send(
            {
                "type": "http.response.start",
                "status": 202,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(body)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _answer_error(self, request: Request, error: Exception, send: Send) -> None:
        handler = _handler_for(self, error)
        if handler is None:
            raise error
        answer = handler(request, error)
        response: Response = await answer if inspect.isawaitable(answer) else answer
        await response(request.scope, request.receive, send)
        if _is_catch_all(self, handler):
            raise error


def _handler_for(app: Starlette, error: Exception) -> Callable[..., Any] | None:
    """The app's handler for the error's closest class (the catch-all `Exception` last)."""
    for cls in type(error).__mro__:
        handler: Callable[..., Any] | None = app.exception_handlers.get(cls)
        if handler is not None:
            return handler
    return None


def _is_catch_all(app: Starlette, handler: Callable[..., Any]) -> bool:
    return handler is app.exception_handlers.get(Exception)


# --- tracking -------------------------------------------------------------------------------


def _scope(principal: Principal) -> str | None:
    """The agency an agency key is limited to; None for admins (everything)."""
    return None if principal.is_admin else principal.agency_id


@router.get("/v1/events/{event_id:path}", tags=["tracking"])
def get_event(
    event_id: str, principal: Caller, svc: Svc, source: Annotated[str | None, Query()] = None
) -> views.EventOut:
    """An accepted event and its notifications with their histories."""
    with svc.sessions() as session:
        found = repository.find_events(
            session=session, event_id=event_id, source=source, agency_id=_scope(principal)
        )
        if not found:
            raise NotFound(f"no event '{event_id}'" + (f" from '{source}'" if source else ""))
        if len(found) > 1:
            raise Ambiguous(f"several sources used the id '{event_id}'; add ?source=")
        event = found[0]
        notifications = repository.notifications_of_event(
            session=session, source=event.source, event_id=event.id
        )
        history = repository.histories(
            session=session, notification_ids=[n.id for n in notifications]
        )
    return views.event_view(event, views.notification_views(notifications, history))


@router.get("/v1/subjects/{subject:path}/timeline", tags=["tracking"])
def subject_timeline(subject: str, principal: Caller, svc: Svc) -> views.Timeline:
    """Every notification about one subject (case), oldest first."""
    with svc.sessions() as session:
        notifications = repository.notifications_of_subject(
            session=session, subject=subject, agency_id=_scope(principal)
        )
        history = repository.histories(
            session=session, notification_ids=[n.id for n in notifications]
        )
    return views.Timeline(
        subject=subject, notifications=views.notification_views(notifications, history)
    )
