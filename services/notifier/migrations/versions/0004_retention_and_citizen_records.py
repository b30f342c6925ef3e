"""Content retention marks purged notifications; citizens.v1 reads preferences by change time.

Revision ID: notifier_0004
Revises: notifier_0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "notifier_0004"
down_revision = "notifier_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifier_notifications") as batch:
        batch.add_column(sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_notifier_preferences_updated", "notifier_preferences", ["updated_at", "citizen_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_notifier_preferences_updated", table_name="notifier_preferences")
    with op.batch_alter_table("notifier_notifications") as batch:
        batch.drop_column("purged_at")
