"""Kafka topic names (CONTRACT.md, "Kafka topics")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic names after applying the deployment's prefix."""

    prefix: str = "avisa."

    @property
    def events(self) -> str:
        return f"{self.prefix}events.v1"

    @property
    def notifications(self) -> str:
        return f"{self.prefix}notifications.v1"

    @property
    def status(self) -> str:
        return f"{self.prefix}status.v1"

    @property
    def decisions(self) -> str:
        """Decision traces: which rules matched each event and why (docs/contract.md)."""
        return f"{self.prefix}decisions.v1"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}deadletter.v1"

    @property
    def keys(self) -> str:
        """Agency key records (compacted; created by `common.keyfeed`, not in `all()`)."""
        return f"{self.prefix}keys.v1"

    @property
    def citizens(self) -> str:
        """Citizens' preferred zone and locale (compacted; created by `common.keyfeed`, not
        in `all()`)."""
        return f"{self.prefix}citizens.v1"

    def all(self) -> tuple[str, ...]:
        return (self.events, self.notifications, self.status, self.decisions, self.deadletter)
