"""Who last changed a citizen's preferences through the API (admin or which agency), and when.

Revision ID: notifier_0003
Revises: notifier_0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "notifier_0003"
down_revision = "notifier_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifier_preferences") as batch:
        batch.add_column(sa.Column("changed_by", sa.String(100), nullable=True))
        batch.add_column(sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifier_preferences") as batch:
        batch.drop_column("changed_at")
        batch.drop_column("changed_by")
