"""Slow clients are cut: headers and body each have a deadline, on every service's server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from common.http_timeouts import HttpTimeouts, guarded_protocol

TIMEOUTS = HttpTimeouts(header_s=0.5, body_s=0.5)


async def echo(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = b"got %d" % len(body)
    headers = [(b"content-length", b"%d" % len(answer))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        echo, host="127.0.0.1", port=port, log_config=None, http=guarded_protocol(TIMEOUTS)
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield "127.0.0.1", port
    running.should_exit = True
    thread.join(10)


def trickle(
    address, data: bytes, *, every_s: float = 0.2, limit_s: float = 5.0
) -> tuple[bytes, float]:
    """Send `data` a byte at a time until the server answers or closes; what it sent, and when."""
    started = time.monotonic()
    answer = b""
    with socket.create_connection(address, timeout=limit_s) as client:
        client.settimeout(every_s)
        for byte in data:
            try:
                client.send(bytes([byte]))
            except OSError:
                break
            try:
                chunk = client.recv(4096)
            except TimeoutError:
                continue
            answer += chunk
            if not chunk or answer:
                break
        client.settimeout(limit_s)
        try:
            while chunk := client.recv(4096):
                answer += chunk
        except OSError:
            pass
    return answer, time.monotonic() - started


def test_a_client_trickling_its_headers_is_cut_within_the_timeout(server):
    answer, took = trickle(server, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100)

    assert answer.startswith(b"HTTP/1.1 408")
    assert took < TIMEOUTS.header_s + 1.5


def test_a_client_trickling_its_body_is_cut_within_the_timeout(server):
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    with socket.create_connection(server, timeout=5) as client:
        client.sendall(head)
        started = time.monotonic()
        answer = b""
        client.settimeout(0.2)
        for _ in range(50):
            try:
                client.send(b"x")
                chunk = client.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            answer += chunk
            if not chunk or answer:
                break
        took = time.monotonic() - started

    assert answer.startswith(b"HTTP/1.1 408")
    assert took < TIMEOUTS.body_s + 1.5


def test_a_connection_that_sends_nothing_is_closed(server):
    with socket.create_connection(server, timeout=5) as client:
        started = time.monotonic()
        answer = client.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < TIMEOUTS.header_s + 1.5


def test_a_prompt_client_is_served_and_kept_alive(server):
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    with socket.create_connection(server, timeout=5) as client:
        for _ in range(2):
            client.sendall(request)
            answer = client.recv(4096)
            assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"got 3")
            time.sleep(TIMEOUTS.header_s + 0.2)  # idle between requests is keep-alive's, not ours
