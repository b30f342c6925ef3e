"""The console's service clients: what they send, and how they read the answers."""

from __future__ import annotations

import httpx
import pytest

from services.console.clients.base import ServiceClient
from services.console.clients.notifier import NotifierClient
from services.console.errors import NotFound, ServiceError, ServiceUnavailable


def client_answering(status: int, body: dict | None = None, seen: list | None = None):
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(status, json=body or {})

    http = httpx.Client(base_url="http://notifier", transport=httpx.MockTransport(handle))
    return ServiceClient("notifier", http, "the-admin-key")


def test_every_call_carries_the_admin_key_and_the_staff_member():
    seen: list[httpx.Request] = []
    notifier = NotifierClient(client_answering(200, {"channels": ["sms"]}, seen))
    assert notifier.preferences("ES-1", actor="ana@example.es") == {"channels": ["sms"]}
    [request] = seen
    assert request.url.path == "/v1/citizens/ES-1/preferences"
    assert request.headers["authorization"] == "Bearer the-admin-key"
    assert request.headers["avisa-actor"] == "ana@example.es"


def test_answers_become_the_errors_pages_know():
    with pytest.raises(NotFound):
        client_answering(404).request("GET", "/x", actor="a")
    with pytest.raises(ServiceUnavailable):
        client_answering(503).request("GET", "/x", actor="a")
    problem = {"detail": "1 field", "errors": [{"path": "url", "message": "expected https"}]}
    with pytest.raises(ServiceError) as raised:
        client_answering(422, problem).request("PUT", "/x", actor="a")
    assert raised.value.field_errors() == {"url": "expected https"}


def test_a_service_that_cannot_be_reached_is_unavailable():
    dead = ServiceClient("rules", httpx.Client(base_url="http://127.0.0.1:1", timeout=1), "k")
    with pytest.raises(ServiceUnavailable) as raised:
        dead.request("GET", "/v1/rules", actor="a")
    assert raised.value.service == "rules"


def test_the_events_audit_is_read_when_the_service_has_one_and_empty_when_not():
    from services.console.clients.events import EventsClient

    entry = {"at": "2026-12-08T10:00:00Z", "actor": "admin:ana@example.es", "action": "create"}
    assert EventsClient(client_answering(200, {"items": [entry, {"x": 1}]})).audit(
        actor="a", object_filter=None, limit=10
    ) == [entry]
    assert EventsClient(client_answering(404)).audit(actor="a", object_filter=None, limit=10) == []
    assert EventsClient(client_answering(422)).audit(actor="a", object_filter="x", limit=10) == []
