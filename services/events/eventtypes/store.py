"""Queries of event-type schemas; every function takes the session as a keyword."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.events.models import EventType


def get(*, session: Session, agency_id: str, type_: str) -> EventType | None:
    return session.get(EventType, (agency_id, type_))


def list_of(*, session: Session, agency_id: str | None) -> Sequence[EventType]:
    query = select(EventType).order_by(EventType.agency_id, EventType.type)
    if agency_id is not None:
        query = query.where(EventType.agency_id == agency_id)
    return session.scalars(query).all()


def schemas_of(*, session: Session, agency_id: str) -> dict[str, dict[str, Any]]:
    query = select(EventType.type, EventType.json_schema).where(EventType.agency_id == agency_id)
    return {row.type: row.json_schema for row in session.execute(query)}


def put(
    *, session: Session, agency_id: str, type_: str, schema: dict[str, Any], now: datetime
) -> tuple[EventType, bool]:
    """Register or replace; returns the row and whether it is new."""
    row = session.get(EventType, (agency_id, type_))
    if row is None:
        row = EventType(
            agency_id=agency_id, type=type_, json_schema=schema, created_at=now, updated_at=now
        )
        session.add(row)
        return row, True
    row.json_schema, row.updated_at = schema, now
    return row, False


def remove(*, session: Session, agency_id: str, type_: str) -> bool:
    result = session.execute(
        delete(EventType).where(EventType.agency_id == agency_id, EventType.type == type_)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
