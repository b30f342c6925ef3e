"""The notifier's tables: one row per notification, one per attempt to send it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Notification(Base):
    """A notification request the notifier took on; its id is the request's deterministic id."""

    __tablename__ = "notifier_notifications"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_source: Mapped[str] = mapped_column(String(512))
    event_id: Mapped[str] = mapped_column(String(512))
    event_type: Mapped[str] = mapped_column(String(512))
    event_subject: Mapped[str] = mapped_column(String(512))
    rule_id: Mapped[str] = mapped_column(String(200))
    rule_version: Mapped[int] = mapped_column(Integer)
    citizen_id: Mapped[str] = mapped_column(String(512))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str | None] = mapped_column(String(10))
    detail: Mapped[str | None] = mapped_column(Text)
    # The last status whose change status.v1 acknowledged: lets a redelivery republish the rest.
    published_status: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # When the content retention purge stripped `request` of texts and addresses (`retention`).
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)

    attempts: Mapped[list[Attempt]] = relationship(
        back_populates="notification", order_by="Attempt.id"
    )

    __table_args__ = (
        Index("ix_notifier_notifications_citizen", "citizen_id"),
        Index("ix_notifier_notifications_event", "event_source", "event_id"),
        # The retention purge's scan (`retention.to_purge`): only rows it has not purged yet.
        Index(
            "ix_notifier_notifications_unpurged",
            "updated_at",
            sqlite_where=text("purged_at IS NULL"),
            postgresql_where=text("purged_at IS NULL"),
        ),
    )


class Attempt(Base):
    """One call to a provider: `sending` before the call, `sent` or `failed` after it."""

    __tablename__ = "notifier_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notification_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("notifier_notifications.id", ondelete="CASCADE")
    )
    channel: Mapped[str] = mapped_column(String(10))
    provider: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    provider_reference: Mapped[str | None] = mapped_column(String(200))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    notification: Mapped[Notification] = relationship(back_populates="attempts")

    __table_args__ = (
        Index("ix_notifier_attempts_notification", "notification_id"),
        Index("ix_notifier_attempts_reference", "provider", "provider_reference"),
        Index("ix_notifier_attempts_status", "status", "at"),
    )


class Preferences(Base):
    """A citizen's own choices (the directory): they override the event's data, opt-outs win."""

    __tablename__ = "notifier_preferences"

    citizen_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    channels: Mapped[list[str] | None] = mapped_column(JSON)
    opt_out: Mapped[list[str]] = mapped_column(JSON)
    quiet_start: Mapped[str | None] = mapped_column(String(5))
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    timezone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(35))
    phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(320))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Who last replaced the document through the API, and when: `admin` or `agency:<id>`
    # (opt-outs recorded from STOP, unsubscribe or a provider only move `updated_at`).
    changed_by: Mapped[str | None] = mapped_column(String(100), default=None)
    changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    # Topics (rule `topic` slugs) the citizen turned off; critical notices still go.
    opt_out_topics: Mapped[list[str] | None] = mapped_column(JSON, default=None)

    __table_args__ = (
        Index("ix_notifier_preferences_phone", "phone"),
        Index("ix_notifier_preferences_email", "email"),
        Index("ix_notifier_preferences_updated", "updated_at", "citizen_id"),
    )


class AgencyPreferences(Base):
    """What one agency set for a citizen through its own key: applied only to notifications of
    that agency's events, and shown only to that agency (and the admin). The shared row in
    `Preferences` (admin, citizen) wins over it; opt-outs of both always apply."""

    __tablename__ = "notifier_agency_preferences"

    citizen_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    agency_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    channels: Mapped[list[str] | None] = mapped_column(JSON)
    opt_out: Mapped[list[str]] = mapped_column(JSON)
    quiet_start: Mapped[str | None] = mapped_column(String(5))
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    timezone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(35))
    phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(320))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AddressOptOut(Base):
    """An address that asked for no more messages on a channel (SMS STOP, email unsubscribe),
    kept even when no citizen in the directory has that address."""

    __tablename__ = "notifier_address_opt_outs"

    channel: Mapped[str] = mapped_column(String(10), primary_key=True)
    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    source: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Deferral(Base):
    """A notification waiting for its quiet hours (or its daily cap) to end; the scheduler
    resumes it at `due_at`."""

    __tablename__ = "notifier_deferrals"

    notification_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("notifier_notifications.id", ondelete="CASCADE"), primary_key=True
    )
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(String(200))
    # `pending`, or `claimed` by a scheduler since `claimed_at` (stale claims are taken back).
    state: Mapped[str] = mapped_column(String(10))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_notifier_deferrals_due", "state", "due_at"),)


class ProviderEvent(Base):
    """A provider webhook event already applied, by the provider's own id: replays are no-ops."""

    __tablename__ = "notifier_provider_events"

    provider: Mapped[str] = mapped_column(String(20), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ParkedReport(Base):
    """A provider report about an attempt still `sending` when it came (we crashed mid-call,
    or have not recorded the answer yet), kept until that attempt is resolved (`parked`)."""

    __tablename__ = "notifier_parked_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    attempt_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("notifier_attempts.id", ondelete="CASCADE")
    )
    provider: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(10))
    # The provider's id of the message (Twilio SID, SendGrid X-Message-Id), as reported.
    reference: Mapped[str | None] = mapped_column(String(200))
    # The attempt's (the report found it by Twilio's `n` callback parameter or SendGrid's
    # custom args): the reconciler settles a notification's parked reports by it.
    notification_id: Mapped[str | None] = mapped_column(String(64))
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_notifier_parked_reports_attempt", "attempt_id"),
        Index("ix_notifier_parked_reports_received", "received_at"),
    )
