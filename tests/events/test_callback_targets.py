"""Callback URLs: what cannot be built or reaches a private address is refused at the PUT and
at every connection; a stored URL that cannot be used parks its own agency, never the others."""

from __future__ import annotations

import ipaddress
import socket
import time
import uuid
from contextlib import closing
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.events.callbacks import store as callback_store
from services.events.callbacks.decisions import SUSPENDED, RetryPolicy
from services.events.callbacks.sender import CallbackSender
from services.events.callbacks.targets import callback_client, refused, target_error, url_error
from tests.events.conftest import ADMIN, make_settings, running, wait_until
from tests.events.receiver import Receiver, emit, status_changes

SECRET = "a-secret-of-some-length"
UNBUILDABLE = ["http://127.0.0.1:18999/p\r\n", "http://127.0.0.1:abc/", "http://[::1/x"]
PRIVATE = [
    "http://127.0.0.1:8002/v1/rules",
    "http://[::1]:8002/",
    "http://localhost:8002/",
    "http://0.0.0.0:8002/",
    "http://169.254.169.254/latest/meta-data/",
    "http://2130706433:8002/",
    "http://0x7f.1:8002/",
    "http://10.1.2.3/",
    "http://192.168.1.1/",
    "http://[::ffff:127.0.0.1]/",
    "http://224.0.0.1/",
    "http://[fe80::1]/",
]
USERINFO = ["https://user:pass@example.es/avisa", "https://user@example.es/avisa"]


@pytest.fixture(scope="module")
def strict_settings(broker, module_database_url):
    return make_settings(
        broker.bootstrap,
        f"t{uuid.uuid4().hex[:10]}.",
        module_database_url,
        callback_allow_private=False,
        callback_poll_s=0.05,
        callback_backoff_base_s=0.02,
        callback_backoff_max_s=0.1,
    )


@pytest.fixture(scope="module")
def client(strict_settings):
    with running(strict_settings) as app_client:
        assert app_client.app.state.status_loop.assigned.wait(20)  # type: ignore[attr-defined]
        yield app_client


def agency(client) -> str:
    name = f"ag-{uuid.uuid4().hex[:8]}"
    assert (
        client.post("/v1/agencies", json={"id": name, "name": "A"}, headers=ADMIN).status_code
        == 201
    )
    return name


def put(client, agency_id, url):
    return client.put(
        f"/v1/agencies/{agency_id}/callback", json={"url": url, "secret": SECRET}, headers=ADMIN
    )


@pytest.mark.parametrize("url", UNBUILDABLE + PRIVATE + USERINFO)
def test_a_url_that_cannot_be_built_or_is_private_is_refused_at_the_put(client, url):
    response = put(client, agency(client), url)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["path"] for e in response.json()["errors"]] == ["url"]


@pytest.mark.parametrize("url", UNBUILDABLE + USERINFO)
def test_unbuildable_urls_are_refused_even_where_private_targets_are_allowed(url):
    assert url_error(url) is not None
    assert target_error(url, allow_private=True) is not None


def test_public_addresses_pass_and_every_private_kind_is_refused():
    assert not refused(ipaddress.ip_address("93.184.216.34"))
    assert not refused(ipaddress.ip_address("2606:4700::1111"))
    for url in PRIVATE:
        assert target_error(url, allow_private=False) is not None, url
    assert target_error("http://127.0.0.1:8002/", allow_private=True) is None


def test_a_refused_port_is_never_connected_to_so_open_and_closed_look_the_same():
    with closing(Receiver(SECRET)) as open_port:
        closed_port = "http://127.0.0.1:1/"
        with callback_client(allow_private=False) as http:
            errors = []
            for url in (open_port.url, closed_port):
                with pytest.raises(httpx.ConnectError) as refusal:
                    http.post(url, content=b"{}")
                errors.append(str(refusal.value))
        assert errors[0] == errors[1]
        assert open_port.received == []


def test_a_name_that_resolves_to_loopback_at_delivery_is_refused_then(monkeypatch):
    """DNS rebinding: the check is made on the address connected to, at connection time."""
    with closing(Receiver(SECRET)) as receiver:
        url = receiver.url.replace("127.0.0.1", "rebind.example")
        real = socket.getaddrinfo

        def rebound(host, *args, **kwargs):
            return real("127.0.0.1" if host == "rebind.example" else host, *args, **kwargs)

        monkeypatch.setattr("socket.getaddrinfo", rebound)
        with callback_client(allow_private=False) as http, pytest.raises(httpx.ConnectError):
            http.post(url, content=b"{}")
        assert receiver.received == []


def test_a_stored_url_that_cannot_be_used_suspends_its_agency_and_never_stalls_another(
    broker, database_url
):
    settings = make_settings(broker.bootstrap, f"t{uuid.uuid4().hex[:10]}.", database_url)
    with running(settings) as client, closing(Receiver(SECRET)) as receiver:
        client.app.state.callback_sender.stop()  # type: ignore[attr-defined]
        bad, good = agency(client), agency(client)
        sessions = client.app.state.services.sessions  # type: ignore[attr-defined]
        now = datetime.now(UTC)
        with sessions.begin() as session:  # as stored before the PUT checked URLs
            for name, url in ((bad, UNBUILDABLE[0]), (good, receiver.url)):
                callback_store.put(session=session, agency_id=name, url=url, secret=SECRET, now=now)
        assert client.app.state.status_loop.assigned.wait(20)  # type: ignore[attr-defined]
        emit(settings, status_changes(f"{bad}/x", 3) + status_changes(f"{good}/x", 3))
        wait_until(lambda: pending(sessions, bad) == 3 and pending(sessions, good) == 3)

        sender = CallbackSender(
            sessions,
            client=callback_client(allow_private=True),
            policy=RetryPolicy(base_s=0.01, max_s=0.1, max_attempts=5, suspend_after=SUSPEND),
            timeout_s=2.0,
            poll_s=0.05,
            batch=100,
        )
        started = time.monotonic()
        sender.sweep()

        assert len(receiver.received) == 3
        assert time.monotonic() - started < 2
        shown = client.get(f"/v1/agencies/{bad}/callback", headers=ADMIN).json()
        assert shown["state"] == SUSPENDED
        assert "refused" in shown["last_error"]
        assert shown["pending"] == 3  # kept: a corrected URL gets them


SUSPEND = timedelta(hours=1)


def pending(sessions, agency_id: str) -> int:
    with sessions() as session:
        return callback_store.pending_count(session=session, agency_id=agency_id)
