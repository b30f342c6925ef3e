"""The events service's domain errors, and their one mapping to problem+json."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from common.problems import Problem, problem_response

log = logging.getLogger(__name__)


class EventsError(Exception):
    """Base of the errors a client can act on; subclasses set status, title and kind."""

    status = 400
    title = "Bad request"
    kind = "error"
    retry_after_s: int | None = None


class PayloadConflict(EventsError):
    """An event id was already used by that source for a different payload."""

    status, title, kind = 409, "Event id already used", "conflict"

    def __init__(self, key: tuple[str, str]) -> None:
        super().__init__(f"event '{key[1]}' from '{key[0]}' was already accepted with other data")
        self.key = key


class NotFound(EventsError):
    status, title, kind = 404, "Not found", "not-found"


class AlreadyExists(EventsError):
    status, title, kind = 409, "Already exists", "conflict"


class Ambiguous(EventsError):
    status, title, kind = 409, "Ambiguous id", "ambiguous"


class Unavailable(EventsError):
    """Nothing was accepted; the client should retry after `retry_after_s`."""

    status, title, kind = 503, "Service unavailable", "unavailable"

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


def to_problem(error: EventsError) -> Problem:
    headers = None if error.retry_after_s is None else {"Retry-After": str(error.retry_after_s)}
    return Problem(error.status, error.title, str(error), kind=error.kind, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Render every EventsError as problem+json; values a database refuses as 422."""

    @app.exception_handler(EventsError)
    async def _events_error(_request: Request, exc: EventsError) -> JSONResponse:
        return problem_response(to_problem(exc))
