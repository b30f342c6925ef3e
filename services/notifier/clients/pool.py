"""Kept-alive HTTP connections for the provider SDKs' HTTP clients: one `http.client`
connection per send thread and origin.

Why not a urllib3 pool: per call it parsed the URL, copied the headers into an
`HTTPHeaderDict`, built a `Timeout`, queued the connection in and out of the pool, polled it
and sent the headers and the body in two system calls - about twice the CPU of the request
itself through `http.client` (which sends a small request in one). Each send thread here
keeps its own connection to each origin, so nothing is shared between threads.

A connection is reused only while idle and open: one the server closed (readable before we
wrote) is replaced before the request goes, never after, so a request is never sent twice.
Redirects are not followed and nothing is retried: the delivery flow decides retries.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
from dataclasses import dataclass
from email.message import Message


class TransportError(Exception):
    """The request could not be sent or its answer not read (refused, reset, timed out).

    `written`: the whole request had been sent when it failed (its answer was lost), so the
    server may have acted on it; otherwise it surely did not (no complete request reached it)."""

    def __init__(self, message: str, *, written: bool = False) -> None:
        super().__init__(message)
        self.written = written


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole HTTP answer; `headers` is read case-insensitively (`headers.get(name)`)."""

    status: int
    reason: str
    headers: Message
    data: bytes


class KeptAlive:
    """Sends requests on kept-alive connections, one per calling thread and origin."""

    def __init__(self, *, ca_certs: str | None = None) -> None:
        self._context = ssl.create_default_context(cafile=ca_certs)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened = 0

    @property
    def connections_opened(self) -> int:
        """How many connections were opened so far (reopened ones included)."""
        return self._opened

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float | None,
    ) -> Answer:
        """Send one request to `url` (absolute) and read its whole answer."""
        scheme, _, rest = url.partition("://")
        host, slash, path = rest.partition("/")
        connection = self._connection(scheme, host, timeout)
        written = False
        try:
            connection.request(method, slash + path or "/", body=body, headers=headers)
            written = True
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise TransportError(f"{type(error).__name__}: {error}", written=written) from error
        return Answer(response.status, response.reason, response.msg, data)

    def _connection(
        self, scheme: str, host: str, timeout: float | None
    ) -> http.client.HTTPConnection:
        connections: dict[str, http.client.HTTPConnection] | None = getattr(
            self._local, "connections", None
        )
        if connections is None:
            connections = self._local.connections = {}
        key = f"{scheme}://{host}"
        connection = connections.get(key)
        if connection is None:
            connection = connections[key] = self._open(scheme, host, timeout)
        elif connection.sock is not None and _closed_by_peer(connection.sock):
            connection.close()  # reopened by the next request
        if connection.sock is None:  # `request` opens it
            with self._lock:
                self._opened += 1
        if connection.timeout != timeout:
            connection.timeout = timeout
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
        return connection

    def _open(self, scheme: str, host: str, timeout: float | None) -> http.client.HTTPConnection:
        if scheme == "https":
            return http.client.HTTPSConnection(host, timeout=timeout, context=self._context)
        if scheme == "http":
            return http.client.HTTPConnection(host, timeout=timeout)
        raise TransportError(f"unsupported scheme {scheme!r}")


def _closed_by_peer(sock: socket.socket) -> bool:
    """An idle kept-alive connection with something to read: the server closed it (or sent
    what we never asked for); either way it is not reused."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))
