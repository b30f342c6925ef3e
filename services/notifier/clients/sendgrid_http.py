"""The SendGrid SDK's HTTP client with kept-alive connections.

`python_http_client.Client` (what `SendGridAPIClient.client` is) builds a new urllib opener
and opens a new TCP (and TLS) connection for every call: a fifth of a send's CPU, plus a
handshake per email against the real API. `PooledClient` is the same client - same URL
building, headers, JSON body, `Response` and error classes - whose requests go through one
urllib3 pool shared by the send threads.
"""

from __future__ import annotations

import functools
import io
import json
import urllib.error
from typing import Any

import urllib3
from python_http_client import Client
from python_http_client.client import Response
from python_http_client.exceptions import handle_error


class _Answer:
    """A urllib3 response as `python_http_client.Response` reads one (urllib's interface)."""

    def __init__(self, response: urllib3.BaseHTTPResponse) -> None:
        self._response = response

    def getcode(self) -> int:
        return self._response.status

    def read(self) -> bytes:
        return self._response.data

    def info(self) -> Any:
        return self._response.headers


def make_pool(size: int) -> urllib3.PoolManager:
    """A pool keeping up to `size` connections per host (one per send thread); no retries:
    the delivery flow decides those."""
    return urllib3.PoolManager(num_pools=4, maxsize=size, retries=False)


class PooledClient(Client):  # type: ignore[misc]  # untyped SDK
    """`python_http_client.Client` whose calls reuse connections from `pool`."""

    def __init__(self, *args: Any, pool: urllib3.PoolManager, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pool = pool

    def _build_client(self, name: str | None = None) -> PooledClient:
        # The SDK's own builds a plain Client: each path segment must keep the pool.
        return PooledClient(
            host=self.host,
            version=self._version,
            request_headers=self.request_headers,
            url_path=[*self._url_path, name] if name else self._url_path,
            append_slash=self.append_slash,
            timeout=self.timeout,
            pool=self._pool,
        )

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
        except urllib3.exceptions.HTTPError as error:
            raise urllib.error.URLError(error) from error
        if answer.status >= 400:
            received: Any = answer.headers  # read with `.get`, as urllib's are
            failure = urllib.error.HTTPError(
                url, answer.status, answer.reason or "", received, io.BytesIO(answer.data)
            )
            raise handle_error(failure) from None
        return Response(_Answer(answer))
