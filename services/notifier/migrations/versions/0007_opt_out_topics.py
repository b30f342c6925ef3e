"""Topics a citizen turned off on the preference page (rule `topic` slugs); NULL is none.

Revision ID: notifier_0007
Revises: notifier_0006
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "notifier_0007"
down_revision = "notifier_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifier_preferences") as batch:
        batch.add_column(sa.Column("opt_out_topics", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifier_preferences") as batch:
        batch.drop_column("opt_out_topics")
