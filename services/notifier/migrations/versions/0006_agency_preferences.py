"""Each agency's own preferences for a citizen, apart from the shared directory row.

Revision ID: notifier_0006
Revises: notifier_0005
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "notifier_0006"
down_revision = "notifier_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifier_agency_preferences",
        sa.Column("citizen_id", sa.String(512), primary_key=True),
        sa.Column("agency_id", sa.String(200), primary_key=True),
        sa.Column("channels", sa.JSON(), nullable=True),
        sa.Column("opt_out", sa.JSON(), nullable=False),
        sa.Column("quiet_start", sa.String(5), nullable=True),
        sa.Column("quiet_end", sa.String(5), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=True),
        sa.Column("locale", sa.String(35), nullable=True),
        sa.Column("phone", sa.String(20), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notifier_agency_preferences")
