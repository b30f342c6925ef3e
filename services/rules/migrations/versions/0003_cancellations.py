"""Which event cancelled a timer, and the outbox of status changes made by admin actions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rules_timers") as batch:
        batch.add_column(sa.Column("cancelled_by", sa.String(512), nullable=True))
    op.create_table(
        "rules_status_outbox",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("notification_id", sa.String(36), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rules_status_outbox")
    with op.batch_alter_table("rules_timers") as batch:
        batch.drop_column("cancelled_by")
