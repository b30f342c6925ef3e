"""The events service's tables: agencies, keys, events, notifications and their history.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def _at(name: str, *, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "events_agencies",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        _at("created_at"),
        sa.Column("callback_url", sa.String(2048), nullable=True),
        sa.Column("callback_secret", sa.String(256), nullable=True),
    )
    op.create_table(
        "events_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agency_id", sa.String(64), sa.ForeignKey("events_agencies.id"), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        _at("created_at"),
        _at("revoked_at", nullable=True),
        sa.UniqueConstraint("key_hash", name="uq_events_keys_key_hash"),
    )
    op.create_index("ix_events_keys_agency_id", "events_keys", ["agency_id"])
    op.create_table(
        "events_events",
        sa.Column("source", sa.String(512), nullable=False),
        sa.Column("id", sa.String(512), nullable=False),
        sa.Column("type", sa.String(512), nullable=False),
        sa.Column("subject", sa.String(512), nullable=False),
        sa.Column("payload_hash", sa.String(64), nullable=False),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _at("received_at"),
        sa.PrimaryKeyConstraint("source", "id", name="pk_events_events"),
    )
    op.create_index("ix_events_events_id", "events_events", ["id"])
    op.create_table(
        "events_notifications",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("event_source", sa.String(512), nullable=False),
        sa.Column("event_id", sa.String(512), nullable=False),
        sa.Column("subject", sa.String(512), nullable=False),
        sa.Column("rule", sa.String(128), nullable=True),
        sa.Column("channel", sa.String(16), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        _at("status_at"),
        _at("first_at"),
        _at("scheduled_for", nullable=True),
        _at("updated_at"),
    )
    op.create_index("ix_events_notifications_subject", "events_notifications", ["subject"])
    op.create_index(
        "ix_events_notifications_event", "events_notifications", ["event_source", "event_id"]
    )
    op.create_table(
        "events_status_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("notification_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _at("at"),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("channel", sa.String(16), nullable=True),
        sa.UniqueConstraint("notification_id", "status", "at", name="uq_events_status_history"),
    )


def downgrade() -> None:
    op.drop_table("events_status_history")
    op.drop_index("ix_events_notifications_event", "events_notifications")
    op.drop_index("ix_events_notifications_subject", "events_notifications")
    op.drop_table("events_notifications")
    op.drop_index("ix_events_events_id", "events_events")
    op.drop_table("events_events")
    op.drop_index("ix_events_keys_agency_id", "events_keys")
    op.drop_table("events_keys")
    op.drop_table("events_agencies")
