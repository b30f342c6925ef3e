"""Read deadlines for every connection the services serve: headers and body each in time.

uvicorn's only read timeout is `timeout_keep_alive` (idle between requests); a client that
trickles a byte every few seconds held a connection, and its request's memory, forever. This
is uvicorn's httptools protocol with two more timers: the headers of a request (from a new
connection or the request's first byte) must arrive within `header_timeout_s`, its body
within `body_timeout_s` of the headers. Past either, the client gets 408 and the connection
is closed (an app waiting for the body sees a disconnect).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from common.settings import HttpTimeouts

__all__ = ["HttpTimeouts", "WorkerProtocol", "guarded_protocol"]

log = logging.getLogger(__name__)


def _timeout_response(what: str) -> bytes:
    body = json.dumps(
        {
            "type": "urn:avisa:problem:timeout",
            "title": "Request timeout",
            "status": 408,
            "detail": f"the request's {what} did not arrive in time",
        }
    ).encode()
    head = (
        b"HTTP/1.1 408 Request Timeout\r\n"
        b"content-type: application/problem+json\r\n"
        b"content-length: %d\r\n"
        b"connection: close\r\n\r\n" % len(body)
    )
    return head + body


class _GuardedProtocol(HttpToolsProtocol):
    timeouts = HttpTimeouts()
    _read_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.timeouts.header_s, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._read_timer is None:
            self._arm(self.timeouts.header_s, "headers")

    def on_headers_complete(self) -> None:
        self._disarm()
        self._arm(self.timeouts.body_s, "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self, delay_s: float, what: str) -> None:
        self._read_timer = self.loop.call_later(delay_s, self._too_slow, what)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _too_slow(self, what: str) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        log.info("client too slow; connection closed", extra={"waiting_for": what})
        cycle: Any = self.cycle
        answered = cycle is not None and what == "body" and cycle.response_started
        if not answered:
            self.transport.write(_timeout_response(what))
        self.transport.close()


class WorkerProtocol(_GuardedProtocol):
    """The guarded protocol by import path, for uvicorn's worker processes (which pickle their
    configuration): `http="common.http_timeouts:WorkerProtocol"`, and each worker sets its
    `timeouts` from its settings before serving."""


def guarded_protocol(timeouts: HttpTimeouts) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with these read deadlines (pass as `http=`)."""
    return type("GuardedHttpToolsProtocol", (_GuardedProtocol,), {"timeouts": timeouts})
