"""Citizen preferences, address opt-outs, deferrals and applied provider webhook events.

Revision ID: notifier_0002
Revises: notifier_0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "notifier_0002"
down_revision = "notifier_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifier_preferences",
        sa.Column("citizen_id", sa.String(512), primary_key=True),
        sa.Column("channels", sa.JSON, nullable=True),
        sa.Column("opt_out", sa.JSON, nullable=False),
        sa.Column("quiet_start", sa.String(5), nullable=True),
        sa.Column("quiet_end", sa.String(5), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("locale", sa.String(35), nullable=True),
        sa.Column("phone", sa.String(20), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_notifier_preferences_phone", "notifier_preferences", ["phone"])
    op.create_index("ix_notifier_preferences_email", "notifier_preferences", ["email"])
    op.create_table(
        "notifier_address_opt_outs",
        sa.Column("channel", sa.String(10), primary_key=True),
        sa.Column("address", sa.String(320), primary_key=True),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "notifier_deferrals",
        sa.Column(
            "notification_id",
            sa.String(64),
            sa.ForeignKey("notifier_notifications.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_notifier_deferrals_due", "notifier_deferrals", ["state", "due_at"])
    op.create_table(
        "notifier_provider_events",
        sa.Column("provider", sa.String(20), primary_key=True),
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_notifier_attempts_status", "notifier_attempts", ["status", "at"])


def downgrade() -> None:
    op.drop_index("ix_notifier_attempts_status", "notifier_attempts")
    op.drop_table("notifier_provider_events")
    op.drop_table("notifier_deferrals")
    op.drop_table("notifier_address_opt_outs")
    op.drop_table("notifier_preferences")
