"""RFC 9457 problem+json: one exception type, one set of handlers for every service."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """An error the client can act on; rendered as problem+json with `status`."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        kind: str = "error",
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail or title
        self.kind = kind
        self.errors = errors
        self.headers = headers


def problem_response(problem: Problem) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:avisa:problem:{problem.kind}",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
    }
    if problem.errors is not None:
        body["errors"] = problem.errors
    return JSONResponse(
        body, status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers
    )


def error_path(location: tuple[int | str, ...] | list[int | str]) -> str:
    """`('body', 'data', 'citizen', 'phone')` → `data.citizen.phone`; list indexes as `[3]`."""
    path = ""
    for part in location:
        if part in ("body", "query", "path", "header") and not path:
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _message(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")


def validation_problem(
    errors: list[Any], title: str = "Invalid request", *, prefix: tuple[int | str, ...] = ()
) -> Problem:
    """A 422 problem naming each bad field by its dotted path."""
    items = [{"path": error_path((*prefix, *e["loc"])), "message": _message(e)} for e in errors]
    count = len(items)
    detail = f"{count} field{'s are' if count != 1 else ' is'} invalid"
    return Problem(422, title, detail, kind="validation", errors=items)


def _is_unavailable(error: DBAPIError) -> bool:
    """Connection-level failures (server restarting, socket gone), not bad statements."""
    return isinstance(error, OperationalError | InterfaceError)


def install_problem_handlers(app: FastAPI) -> None:
    """Map every error the app can raise to problem+json; never a stack trace to the client."""

    @app.exception_handler(Problem)
    async def _problem(_request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(validation_problem(list(exc.errors())))

    @app.exception_handler(ValidationError)
    async def _invalid_model(_request: Request, exc: ValidationError) -> JSONResponse:
        return problem_response(validation_problem(list(exc.errors())))

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Error")
        return problem_response(
            Problem(exc.status_code, title, str(exc.detail), headers=dict(exc.headers or {}))
        )

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, exc: DataError) -> JSONResponse:
        # Input the checks at the door let through but the database cannot store or compare
        # (e.g. a NUL character in a path on PostgreSQL): the client's to fix, not a 500.
        log.warning("value refused by the database", extra={"path": request.url.path})
        return problem_response(
            Problem(
                422,
                "Invalid value",
                "the request holds a value that cannot be stored (e.g. a NUL character)",
                kind="validation",
            )
        )

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        if not exc.connection_invalidated and not _is_unavailable(exc):
            return await _unexpected(request, exc)
        log.warning("database unavailable", extra={"path": request.url.path})
        return problem_response(
            Problem(
                503,
                "Service unavailable",
                "the database is unreachable; retry shortly",
                kind="unavailable",
                headers={"Retry-After": "2"},
            )
        )

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, _exc: ClientDisconnect) -> JSONResponse:
        # The client left mid-body: nothing went wrong here, and nobody reads the answer.
        log.info("client disconnected before its body was read", extra={"path": request.url.path})
        return problem_response(
            Problem(400, "Client disconnected", "the body was not sent whole", kind="disconnected")
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", exc_info=exc, extra={"path": request.url.path})
        return problem_response(Problem(500, "Internal error", "an unexpected error occurred"))
