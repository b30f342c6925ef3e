"""A client that leaves mid-body is not an error of ours: logged at INFO, no traceback."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.events.conftest import DEMO, STRUCTURED


@pytest.fixture
def client(shared_client):
    return shared_client


def test_a_client_that_disconnects_mid_body_is_logged_at_info_without_traceback(client, caplog):
    headers = [
        (b"authorization", DEMO["Authorization"].encode()),
        (b"content-type", STRUCTURED.encode()),
        (b"content-length", b"1000"),
    ]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/events",
        "raw_path": b"/v1/events",
        "query_string": b"",
        "headers": headers,
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 8001),
        "client": ("127.0.0.1", 5000),
        "root_path": "",
    }
    messages = iter(
        [{"type": "http.request", "body": b'{"specversion": ', "more_body": True}]
        + [{"type": "http.disconnect"}] * 3
    )
    sent: list[dict] = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message)

    with caplog.at_level(logging.DEBUG), ThreadPoolExecutor(1) as thread:
        # A thread of its own: an earlier test of the same worker may have left its event
        # loop set as running in this one.
        thread.submit(asyncio.run, client.app(scope, receive, send)).result()
    ours = [r for r in caplog.records if r.name.split(".")[0] in {"common", "services"}]

    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [400]
    assert not [r for r in ours if r.levelno >= logging.WARNING]
    [record] = [r for r in ours if "disconnected" in r.getMessage()]
    assert record.levelno == logging.INFO and record.exc_info is None
