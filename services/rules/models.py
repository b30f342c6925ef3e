"""The rules service's tables: current rules and templates, every version of them, the audit log.

Every change writes a new row in a `*_versions` table (who, when, the whole document); the
current tables hold the latest live version only. A rule version never changes once written,
so notification ids derived from (rule id, version) stay meaningful; reminder timers reference
the same pair.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Boolean, DateTime, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID_LENGTH = 100
ACTOR_LENGTH = 200


class Base(DeclarativeBase):
    """The rules service's own metadata; other services never see these tables."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        datetime: DateTime(timezone=True),
    }


class CurrentDocument(Base):
    """Columns of a live rule or template."""

    __abstract__ = True

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(ACTOR_LENGTH))


class DocumentVersion(Base):
    """Columns of one version of a rule or template."""

    __abstract__ = True

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    document: Mapped[dict[str, Any]]
    changed_at: Mapped[datetime]
    changed_by: Mapped[str] = mapped_column(String(ACTOR_LENGTH))
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class RuleRow(CurrentDocument):
    __tablename__ = "rules_rules"

    enabled: Mapped[bool] = mapped_column(Boolean, index=True)


class RuleVersionRow(DocumentVersion):
    __tablename__ = "rules_rule_versions"


class TemplateRow(CurrentDocument):
    __tablename__ = "rules_templates"


class TemplateVersionRow(DocumentVersion):
    __tablename__ = "rules_template_versions"


class AuditRow(Base):
    """One admin action: who did what to which rule or template, and the version it made."""

    __tablename__ = "rules_audit"
    __table_args__ = (Index("ix_rules_audit_object", "kind", "object_id"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(ACTOR_LENGTH))
    action: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20))
    object_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    version: Mapped[int] = mapped_column(Integer)


EVENT_KEY_LENGTH = 512


class TimerRow(Base):
    """A reminder waiting for its time: the full notification request, stored at trigger time.

    `notification_id` is deterministic (rule, version, event, offset), so reprocessing an event
    finds the row instead of adding one. State: pending → fired | cancelled | expired.
    `cancelled_by` is the id of the event (from the same source) that cancelled or replaced the
    timer, so reprocessing that event publishes the same `cancelled` statuses again.
    """

    __tablename__ = "rules_timers"
    __table_args__ = (
        # rule_id (and state, which SQLite wants in the index to leave the table unread)
        # after due_at: the scheduler reads due times in order, and counting pending timers
        # per rule (the console's rules list) scans this index alone.
        Index(
            "ix_rules_timers_pending",
            "due_at",
            "rule_id",
            "state",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        Index("ix_rules_timers_subject", "rule_id", "subject", "source", "state"),
    )

    notification_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    due_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(10))
    rule_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    rule_version: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(EVENT_KEY_LENGTH))
    source: Mapped[str] = mapped_column(String(EVENT_KEY_LENGTH))
    event_id: Mapped[str] = mapped_column(String(EVENT_KEY_LENGTH))
    event_time: Mapped[datetime]
    step: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    not_after: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    cancelled_by: Mapped[str | None] = mapped_column(String(EVENT_KEY_LENGTH), default=None)


class CancellationRow(Base):
    """The latest cancelling event seen for a rule and subject (from one source), so a trigger
    processed after it (out of order) schedules nothing."""

    __tablename__ = "rules_cancellations"

    rule_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    subject: Mapped[str] = mapped_column(String(EVENT_KEY_LENGTH), primary_key=True)
    source: Mapped[str] = mapped_column(String(EVENT_KEY_LENGTH), primary_key=True)
    cancelled_at: Mapped[datetime]
    event_id: Mapped[str] = mapped_column(String(EVENT_KEY_LENGTH))


class StatusOutboxRow(Base):
    """A status change committed with the change it reports, waiting to be published.

    Used where nothing would redeliver the work after a crash (cancelling a disabled rule's
    timers in the background):
    the relay publishes the rows, then deletes them.
    """

    __tablename__ = "rules_status_outbox"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notification_id: Mapped[str] = mapped_column(String(36))
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class WithdrawalRow(Base):
    """A rule disabled or deleted at `version`: its pending timers of older versions are
    cancelled in the background, chunk by chunk, resuming after `resume_after` (the JSON list
    [subject, source, notification id] of the last timer cancelled; empty at the start).

    A rule's latest finished row stays after `done_at`: at fire time a timer older than its
    rule's latest withdrawal is cancelled, so enabling the rule again never brings such a timer
    back. Earlier finished rows of the rule are dropped when a later job finishes.
    """

    __tablename__ = "rules_withdrawals"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[str] = mapped_column(String(ID_LENGTH), index=True)
    version: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]
    resume_after: Mapped[str] = mapped_column(Text, default="")
    remaining: Mapped[int | None] = mapped_column(Integer, default=None)
    done_at: Mapped[datetime | None] = mapped_column(default=None)


class WatermarkRow(Base):
    """How far the rule engine got on one partition of a topic it consumes: every record
    accepted before `processed_until` on it is processed (its effects are durable). `lag` is
    how many records were left when it was written (0: caught up, and `processed_until` is the
    time the log end was looked at); `partitions` is the topic's partition count then."""

    __tablename__ = "rules_watermarks"

    topic: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    partitions: Mapped[int] = mapped_column(Integer)
    processed_until: Mapped[datetime]
    lag: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]
