"""The events service's tables: agencies, keys, events, timelines, callbacks, limits, types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

PENDING = "pending"
ACCEPTED = "accepted"


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both databases (SQLite stores them naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; give a UTC offset")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Json = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """The events service's own metadata; other services never share it."""


class Agency(Base):
    __tablename__ = "events_agencies"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AgencyKey(Base):
    __tablename__ = "events_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("events_agencies.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)


class Event(Base):
    """One event by its (source, id) key; `pending` until the broker acknowledged it.

    The primary key leads with `id`, so it also serves lookups by id alone."""

    __tablename__ = "events_events"

    source: Mapped[str] = mapped_column(String(512), primary_key=True)
    id: Mapped[str] = mapped_column(String(512), primary_key=True)
    type: Mapped[str] = mapped_column(String(512))
    subject: Mapped[str] = mapped_column(String(512))
    payload_hash: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    state: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    purged_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    # Loaded only where asked for (`selectinload`); never touched by the intake.
    decision: Mapped[Decision | None] = relationship(
        primaryjoin="and_(Event.source == foreign(Decision.event_source), "
        "Event.id == foreign(Decision.event_id))",
        viewonly=True,
        uselist=False,
        lazy="raise",
    )

    __table_args__ = (PrimaryKeyConstraint("id", "source", name="pk_events_events"),)


class Decision(Base):
    """The rule engine's decision trace of one event (decisions.v1): ids and reasons only, so
    it is kept when the event's content is purged. A redelivered decision replaces it."""

    __tablename__ = "events_decisions"

    event_source: Mapped[str] = mapped_column(String(512), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    rules: Mapped[list[dict[str, Any]]] = mapped_column(Json)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Notification(Base):
    """The latest known status of one notification, as status.v1 reported it."""

    __tablename__ = "events_notifications"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_source: Mapped[str] = mapped_column(String(512))
    event_id: Mapped[str] = mapped_column(String(512))
    subject: Mapped[str] = mapped_column(String(512), index=True)
    rule: Mapped[str | None] = mapped_column(String(128), default=None)
    channel: Mapped[str | None] = mapped_column(String(16), default=None)
    status: Mapped[str] = mapped_column(String(16))
    status_at: Mapped[datetime] = mapped_column(UtcDateTime())
    first_at: Mapped[datetime] = mapped_column(UtcDateTime())
    scheduled_for: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_events_notifications_event", "event_source", "event_id"),)


class StatusHistory(Base):
    """Every distinct status change of a notification; (notification, status, at) is unique."""

    __tablename__ = "events_status_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notification_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    detail: Mapped[str | None] = mapped_column(Text, default=None)
    channel: Mapped[str | None] = mapped_column(String(16), default=None)

    __table_args__ = (
        UniqueConstraint("notification_id", "status", "at", name="uq_events_status_history"),
    )


class Callback(Base):
    """An agency's callback endpoint and its health; `secret` signs, and is never shown."""

    __tablename__ = "events_callbacks"

    agency_id: Mapped[str] = mapped_column(ForeignKey("events_agencies.id"), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(16))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    suspended_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CallbackDelivery(Base):
    """One status change waiting to be POSTed to its agency (the durable callback queue)."""

    __tablename__ = "events_callback_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("events_agencies.id"))
    notification_id: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(Text, default=None)

    __table_args__ = (
        Index("ix_events_callback_outbox_due", "next_attempt_at", "id"),
        Index("ix_events_callback_outbox_agency", "agency_id"),
    )


class AgencyLimits(Base):
    """Per-agency overrides of the request rate and the daily cap of accepted events."""

    __tablename__ = "events_limits"

    agency_id: Mapped[str] = mapped_column(ForeignKey("events_agencies.id"), primary_key=True)
    requests_per_minute: Mapped[int | None] = mapped_column(Integer, default=None)
    daily_events: Mapped[int | None] = mapped_column(Integer, default=None)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class DailyUsage(Base):
    """Events accepted per agency and UTC day (`YYYY-MM-DD`), for the daily cap."""

    __tablename__ = "events_daily_usage"

    agency_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    accepted: Mapped[int] = mapped_column(Integer)


class EventType(Base):
    """A JSON Schema an agency registered for the `data` of one of its event types."""

    __tablename__ = "events_event_types"

    agency_id: Mapped[str] = mapped_column(ForeignKey("events_agencies.id"), primary_key=True)
    type: Mapped[str] = mapped_column(String(512), primary_key=True)
    json_schema: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AuditRow(Base):
    """One change made through the API: who (`admin:<Avisa-Actor>`, `admin` or
    `agency:<id>`), what (`kind` and `object_id`, such as `key` and `dgt/abcd1234`), when, and
    the fields it changed (`changes`: path, op, old and new; secrets only as changed)."""

    __tablename__ = "events_audit"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20))
    object_id: Mapped[str] = mapped_column(String(600))
    changes: Mapped[list[dict[str, Any]]] = mapped_column(Json)

    __table_args__ = (
        Index("ix_events_audit_object", "kind", "object_id"),
        Index("ix_events_audit_actor", "actor"),
    )
