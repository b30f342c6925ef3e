"""The console's exceptions, and the pages they become (never a stack trace)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

if TYPE_CHECKING:
    from services.console.rendering import Pages

log = logging.getLogger(__name__)


class NotFound(Exception):
    """No such object, or one of another agency (the same answer on purpose)."""


class Forbidden(Exception):
    """Signed in, but this role may not do that."""


class SignInRequired(Exception):
    """Not signed in (or the session ended): go to the sign-in page and come back."""


class CsrfFailed(Exception):
    """A form posted without this browser's token: possibly another site's forgery."""


class ServiceUnavailable(Exception):
    """One of the three services did not answer."""

    def __init__(self, service: str) -> None:
        super().__init__(service)
        self.service = service


class ServiceError(Exception):
    """A service answered with an error the page did not expect."""

    def __init__(self, service: str, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"{service} answered {status}")
        self.service, self.status, self.problem = service, status, problem

    def field_errors(self) -> dict[str, str]:
        """The problem's `errors` as {path: message}, for the fields of a form."""
        errors = self.problem.get("errors") or []
        found = {str(e.get("path", "")): str(e.get("message", "")) for e in errors}
        if not found and self.problem.get("detail"):
            found[""] = str(self.problem["detail"])
        return found


def _page(request: Request, status: int, template: str, **context: Any) -> Response:
    pages: Pages = request.app.state.console.pages
    try:
        return pages.render(request, template, status=status, **context)
    except Exception:  # an error page must never fail in turn
        log.exception("error page failed to render")
        return Response("Error", status_code=status, media_type="text/plain")


def _sign_in_redirect(request: Request, _error: Exception) -> Response:
    target = request.url.path
    if request.url.query:
        target += f"?{request.url.query}"
    return RedirectResponse(f"/sign-in?next={quote(target, safe='/')}", status_code=303)


def _not_found(request: Request, _error: Exception) -> Response:
    return _page(request, 404, "errors/404.html")


def _forbidden(request: Request, _error: Exception) -> Response:
    return _page(request, 403, "errors/403.html")


def _csrf(request: Request, _error: Exception) -> Response:
    return _page(request, 400, "errors/csrf.html")


def _http(request: Request, error: Exception) -> Response:
    status = error.status_code if isinstance(error, HTTPException) else 500
    if status == 404:
        return _not_found(request, error)
    if status == 405:
        return _page(request, 405, "errors/404.html")
    return _page(request, status, "errors/500.html")


def _unavailable(request: Request, error: Exception) -> Response:
    service = error.service if isinstance(error, ServiceUnavailable) else ""
    log.warning("service unavailable", extra={"service": service})
    return _page(request, 503, "errors/unavailable.html", service=service)


def crash_page(request: Request, error: Exception) -> Response:
    """The 500 page of an unexpected error (logged with its traceback, never shown)."""
    log.error("console page failed", exc_info=error, extra={"path": request.url.path})
    return _page(request, 500, "errors/500.html")


def install_error_pages(app: FastAPI) -> None:
    """Every error becomes a page of the design system, in the reader's language."""
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(SignInRequired, _sign_in_redirect)
    app.add_exception_handler(CsrfFailed, _csrf)
    app.add_exception_handler(ServiceUnavailable, _unavailable)
    app.add_exception_handler(HTTPException, _http)
    # Bad path or query values of a page: there is no such page.
    app.add_exception_handler(RequestValidationError, _not_found)
    app.add_exception_handler(ServiceError, crash_page)
