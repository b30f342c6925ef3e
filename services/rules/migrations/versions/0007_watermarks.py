"""Per-partition watermarks of the rule engine: how far `events.v1` is processed, so the
scheduler fires a reminder only once every event accepted before its due time is processed
(a cancel answered 202 but not yet consumed must still cancel it).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rules_watermarks",
        sa.Column("topic", sa.String(100), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("partitions", sa.Integer, nullable=False),
        sa.Column("processed_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lag", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rules_watermarks")
