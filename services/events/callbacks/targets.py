"""Where agency callbacks may go: a URL httpx can send to, at a public address.

Checked twice: when the agency sets its URL (422 naming `url`), and at every connection the
sender opens, where the host is resolved, each address checked, and the socket connected to
the address that was checked (a name that resolves to a public address at PUT and to a
private one later, DNS rebinding, is refused then too). A refused target is never connected
to, so the error an agency sees says nothing about what listens there.
"""

from __future__ import annotations

import ipaddress
import socket
import typing
from urllib.parse import urlsplit

import httpcore
import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedTarget(httpcore.ConnectError):
    """The URL's host is (or resolves to) an address callbacks may not reach."""


def url_error(url: str) -> str | None:
    """Why `url` cannot be a callback URL, whatever it resolves to (None: it can)."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return "whitespace and control characters are not allowed in a URL"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as error:
        return f"not a usable URL: {error}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected an absolute http(s) URL like https://example.es/avisa"
    if "@" in parts.netloc:
        return "user names and passwords (user:password@host) are not allowed in the URL"
    try:
        httpx.URL(url)
    except httpx.InvalidURL as error:
        return f"not a usable URL: {error}"
    return None


def refused(address: Address) -> bool:
    """True for loopback, link-local, private, multicast, unspecified and reserved addresses
    (an IPv4 address written as IPv6, `::ffff:127.0.0.1`, counts as the IPv4 one)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
        or not address.is_global
    )


def resolve(host: str, port: int) -> list[Address]:
    """Every address `host` resolves to (numeric forms like `2130706433` included)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise httpcore.ConnectError(f"the host name does not resolve: {error}") from error
    return [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in found]


def public_address(host: str, port: int, *, allow_private: bool) -> str:
    """The address to connect to for `host`: its first, once every one of them passed."""
    addresses = resolve(host.strip("[]"), port)
    if not addresses:
        raise httpcore.ConnectError("the host name does not resolve")
    if not allow_private and any(refused(address) for address in addresses):
        raise RefusedTarget(
            "the host is, or resolves to, a loopback, private, link-local, multicast or "
            "reserved address, which callbacks may not reach"
        )
    return str(addresses[0])


def target_error(url: str, *, allow_private: bool) -> str | None:
    """Why a callback may not be POSTed to `url` (syntax, then where it resolves); None: it may."""
    error = url_error(url)
    if error is not None or allow_private:
        return error
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        public_address(parts.hostname or "", port, allow_private=False)
    except httpcore.ConnectError as refusal:
        return str(refusal)
    return None


class CheckedBackend(httpcore.SyncBackend):
    """httpcore's network backend, connecting only to addresses that passed `public_address`."""

    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        address = public_address(host, port, allow_private=self._allow_private)
        # TLS still names the URL's host (httpcore passes it to start_tls), only the socket
        # goes to the checked address.
        return super().connect_tcp(address, port, timeout, local_address, socket_options)


def callback_client(*, allow_private: bool) -> httpx.Client:
    """The sender's HTTP client: no redirects, no proxies from the environment, and every
    connection through `CheckedBackend`."""
    transport = httpx.HTTPTransport(trust_env=False)
    # httpx has no parameter for httpcore's network backend: its pool is replaced with the
    # same one (httpx 0.28's defaults) over the checked backend.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=100,
        max_keepalive_connections=20,
        keepalive_expiry=5.0,
        network_backend=CheckedBackend(allow_private=allow_private),
    )
    return httpx.Client(transport=transport, follow_redirects=False, trust_env=False)


def refusal_of(error: BaseException) -> str | None:
    """The reason when `error` (an httpx error) is a refused target; None otherwise."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, RefusedTarget):
            return str(cause)
        cause = cause.__cause__ or cause.__context__
    return None
