"""The three services' clients, built together from the settings (or handed in by tests)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from services.console.clients.base import ServiceClient
from services.console.clients.events import EventsClient
from services.console.clients.notifier import NotifierClient
from services.console.clients.rules import RulesClient
from services.console.config import Settings


@dataclass
class ServiceClients:
    events: EventsClient
    rules: RulesClient
    notifier: NotifierClient
    _closers: tuple[ServiceClient, ...] = ()

    def close(self) -> None:
        for client in self._closers:
            client.close()


def build_clients(
    settings: Settings, http: Mapping[str, httpx.Client] | None = None
) -> ServiceClients:
    """A pooled client per service; `http` replaces the pools (tests pass in-process apps)."""
    key = settings.effective_admin_key()
    pools = dict(http or {})
    urls = {
        "events": settings.events_url,
        "rules": settings.rules_url,
        "notifier": settings.notifier_url,
    }
    for name, url in urls.items():
        pools.setdefault(
            name, httpx.Client(base_url=url, timeout=settings.console_service_timeout_s)
        )
    clients = {name: ServiceClient(name, pools[name], key) for name in urls}
    owned = tuple(c for c in clients.values() if http is None or c.name not in http)
    return ServiceClients(
        events=EventsClient(clients["events"]),
        rules=RulesClient(clients["rules"]),
        notifier=NotifierClient(clients["notifier"]),
        _closers=owned,
    )
