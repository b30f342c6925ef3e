"""Reminder timers and the cancellations that stop them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_KEY = 512


def _at(name: str, *, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "rules_timers",
        sa.Column("notification_id", sa.String(36), primary_key=True),
        _at("due_at"),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("rule_id", sa.String(100), nullable=False),
        sa.Column("rule_version", sa.Integer, nullable=False),
        sa.Column("subject", sa.String(_KEY), nullable=False),
        sa.Column("source", sa.String(_KEY), nullable=False),
        sa.Column("event_id", sa.String(_KEY), nullable=False),
        _at("event_time"),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        _at("not_after", nullable=True),
        _at("created_at"),
        _at("updated_at"),
    )
    op.create_index("ix_rules_timers_due", "rules_timers", ["state", "due_at"])
    op.create_index(
        "ix_rules_timers_subject", "rules_timers", ["rule_id", "subject", "source", "state"]
    )
    op.create_table(
        "rules_cancellations",
        sa.Column("rule_id", sa.String(100), primary_key=True),
        sa.Column("subject", sa.String(_KEY), primary_key=True),
        sa.Column("source", sa.String(_KEY), primary_key=True),
        _at("cancelled_at"),
        sa.Column("event_id", sa.String(_KEY), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rules_cancellations")
    op.drop_table("rules_timers")
