"""HTTP clients for the Twilio SDK (its `http_client=` extension point).

The SDK's own `TwilioHttpClient` goes through requests: a `Request`, a prepared request,
cookie and environment merging and hooks on every call - about half the CPU of a send - and a
pool of `cpu_count + 4` connections, fewer than the send threads. `PooledHttpClient` sends
the same request (form body, basic auth, the SDK's headers) on kept-alive connections, one
per send thread (`pool.KeptAlive`), never following redirects. Both keep each thread's last
response headers, which Twilio's exceptions lack (`Retry-After`).
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import os
import threading
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response

from services.notifier.clients.pool import KeptAlive, TransportError

_JSON = ("application/json", "application/scim+json")


def _pairs(values: Mapping[str, Any] | None) -> list[tuple[str, Any]]:
    """Form or query pairs as requests encodes them: lists repeat the key, None is left out."""
    pairs: list[tuple[str, Any]] = []
    for key, value in (values or {}).items():
        items: Iterable[Any] = value if isinstance(value, list | tuple) else [value]
        pairs += [(key, item) for item in items if item is not None]
    return pairs


@functools.lru_cache(maxsize=8)
def _basic(user: str, password: str) -> str:
    """The `Authorization` value of basic auth (the same few credentials on every call)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class PooledHttpClient(HttpClient):  # type: ignore[misc]  # untyped SDK
    """Twilio's `HttpClient` over kept-alive connections, one per send thread and host."""

    def __init__(self, *, timeout: float | None) -> None:
        super().__init__(logging.getLogger("twilio.http_client"), False, timeout)
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self._pool = KeptAlive(ca_certs=bundle or DEFAULT_CA_BUNDLE_PATH)
        self._local = threading.local()

    @property
    def last_headers(self) -> Any:
        """The headers of this thread's last response (None when it got none)."""
        return getattr(self._local, "headers", None)

    def request(  # noqa: PLR0917 - the SDK's signature
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """One request; network failures raise `ConnectionError` (an `OSError`). A redirect
        is answered as it is, never followed (`allow_redirects` or not, as before)."""
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = _basic(*auth)
        query = urlencode(_pairs(params))
        body: bytes | None = None
        if data is not None:
            if headers.get("Content-Type") in _JSON:
                body = json.dumps(data).encode()
            else:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
                body = urlencode(_pairs(data)).encode()
        self._local.headers = None
        try:
            answer = self._pool.request(
                method.upper(),
                f"{url}?{query}" if query else url,
                body=body,
                headers=headers,
                timeout=timeout or self.timeout,
            )
        except TransportError as error:
            raise ConnectionError(f"twilio request failed: {error}") from error
        self._local.headers = answer.headers
        return Response(answer.status, answer.data.decode("utf-8"), answer.headers)


class RequestsHttpClient(TwilioHttpClient):  # type: ignore[misc]  # untyped SDK
    """The SDK's requests client, for when proxies are configured in the environment (which
    requests honours per URL); its pool sized for the send threads."""

    def __init__(self, *, timeout: float | None, pool_size: int) -> None:
        super().__init__(timeout=timeout)
        self._local = threading.local()
        for scheme in ("https://", "http://"):
            self.session.mount(scheme, HTTPAdapter(pool_maxsize=pool_size))

    @property
    def last_headers(self) -> Any:
        return getattr(self._local, "headers", None)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self._local.headers = None
        response = super().request(*args, **kwargs)
        self._local.headers = response.headers
        return response


def http_client(*, timeout: float | None, pool_size: int) -> PooledHttpClient | RequestsHttpClient:
    """The pooled client, or the requests one (`pool_size` connections per host) when the
    environment names proxies."""
    if urllib.request.getproxies():
        return RequestsHttpClient(timeout=timeout, pool_size=pool_size)
    return PooledHttpClient(timeout=timeout)
