"""Rows the tests lay down directly, where the intake would claim them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.orm import Session

from services.events.flows import Incoming
from services.events.models import PENDING, Event


def add_pending(*, session: Session, items: Iterable[Incoming], now: datetime) -> None:
    """Record `items` as `pending`, as a claim that has not been published yet leaves them."""
    session.add_all(
        Event(
            source=item.event.source,
            id=item.event.id,
            type=item.event.type,
            subject=item.event.subject,
            payload_hash=item.payload_hash,
            payload=item.event.to_wire(),
            state=PENDING,
            received_at=now,
        )
        for item in items
    )
