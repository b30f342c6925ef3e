"""The three services' clients, built together from the settings (or handed in by tests)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from services.console.clients.base import ServiceClient
from services.console.clients.events import EventsClient
from services.console.clients.rules import RulesClient
from services.console.config import Settings


@dataclass
class ServiceClients:
    events: EventsClient
    rules: RulesClient
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
    for name, url in (("events", settings.events_url), ("rules", settings.rules_url)):
        pools.setdefault(
            name, httpx.Client(base_url=url, timeout=settings.console_service_timeout_s)
        )
    events = ServiceClient("events", pools["events"], key)
    rules = ServiceClient("rules", pools["rules"], key)
    owned = tuple(c for c in (events, rules) if http is None or c.name not in http)
    return ServiceClients(events=EventsClient(events), rules=RulesClient(rules), _closers=owned)
