"""The SendGrid SDK's HTTP client with kept-alive connections.

`python_http_client.Client` (what `SendGridAPIClient.client` is) builds a new urllib opener
and opens a new TCP (and TLS) connection for every call: a fifth of a send's CPU, plus a
handshake per email against the real API. `PooledClient` is the same client - same URL
building, headers, JSON body, `Response` and error classes - whose requests go through
kept-alive connections (`pool.KeptAlive`, one per send thread).
"""

from __future__ import annotations

import functools
import io
import json
import urllib.error
from typing import Any

from python_http_client import Client
from python_http_client.client import Response
from python_http_client.exceptions import handle_error

from services.notifier.clients.pool import Answer, KeptAlive, TransportError


class _Answer:
    """An answer as `python_http_client.Response` reads one (urllib's interface)."""

    def __init__(self, answer: Answer) -> None:
        self._answer = answer

    def getcode(self) -> int:
        return self._answer.status

    def read(self) -> bytes:
        return self._answer.data

    def info(self) -> Any:
        return self._answer.headers


def make_pool() -> KeptAlive:
    """Kept-alive connections, one per send thread; no retries: the delivery flow decides."""
    return KeptAlive()


class PooledClient(Client):  # type: ignore[misc]  # untyped SDK
    """`python_http_client.Client` whose calls reuse connections from `pool`.

    Its path segments (`client.mail.send`) are built once and kept: the SDK builds a new
    client per segment per call, and these only differ by their path."""

    def __init__(self, *args: Any, pool: KeptAlive, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pool = pool
        self._children: dict[tuple[str | None, Any], PooledClient] = {}

    def _build_client(self, name: str | None = None) -> PooledClient:
        key = (name, self._version)  # `version(n)` changes it before building
        child = self._children.get(key)
        if child is None:
            # The SDK's own builds a plain Client: each path segment must keep the pool.
            child = PooledClient(
                host=self.host,
                version=self._version,
                request_headers=self.request_headers,
                url_path=[*self._url_path, name] if name else self._url_path,
                append_slash=self.append_slash,
                timeout=self.timeout,
                pool=self._pool,
            )
            self._children[key] = child
        return child

    def __getattr__(self, name: str) -> Any:
        if name in self.methods:
            return functools.partial(self._request, name.upper())
        return super().__getattr__(name)

    def _request(
        self,
        method: str,
        request_body: Any = None,
        query_params: dict[str, Any] | None = None,
        request_headers: dict[str, str] | None = None,
        timeout: float | None = None,
        **_: Any,
    ) -> Response:
        """What the SDK's `http_request` does, over the pool; HTTP errors are raised as the
        SDK's own `HTTPError` subclasses, network failures as `URLError` (an `OSError`)."""
        headers = {**self.request_headers, **(request_headers or {})}
        data: bytes | None = None
        if request_body is not None:
            if headers.setdefault("Content-Type", "application/json") == "application/json":
                data = json.dumps(request_body).encode()
            else:
                data = request_body.encode()
        url = self._build_url(query_params)
        try:
            answer = self._pool.request(
                method, url, body=data, headers=headers, timeout=timeout or self.timeout
            )
        except TransportError as error:
            raise urllib.error.URLError(error) from error
        if answer.status >= 400:
            received: Any = answer.headers  # read with `.get`, as urllib's are
            failure = urllib.error.HTTPError(
                url, answer.status, answer.reason or "", received, io.BytesIO(answer.data)
            )
            raise handle_error(failure) from None
        return Response(_Answer(answer))
