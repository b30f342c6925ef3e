"""The notifier's tables: notifications and their attempts.

Revision ID: notifier_0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "notifier_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifier_notifications",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("event_source", sa.String(512), nullable=False),
        sa.Column("event_id", sa.String(512), nullable=False),
        sa.Column("event_type", sa.String(512), nullable=False),
        sa.Column("event_subject", sa.String(512), nullable=False),
        sa.Column("rule_id", sa.String(200), nullable=False),
        sa.Column("rule_version", sa.Integer, nullable=False),
        sa.Column("citizen_id", sa.String(512), nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("channel", sa.String(10), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("published_status", sa.String(20), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_notifier_notifications_citizen", "notifier_notifications", ["citizen_id"])
    op.create_index(
        "ix_notifier_notifications_event", "notifier_notifications", ["event_source", "event_id"]
    )
    op.create_table(
        "notifier_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "notification_id",
            sa.String(64),
            sa.ForeignKey("notifier_notifications.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("provider_reference", sa.String(200), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_detail", sa.Text, nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_notifier_attempts_notification", "notifier_attempts", ["notification_id"])
    op.create_index(
        "ix_notifier_attempts_reference", "notifier_attempts", ["provider", "provider_reference"]
    )


def downgrade() -> None:
    op.drop_table("notifier_attempts")
    op.drop_table("notifier_notifications")
