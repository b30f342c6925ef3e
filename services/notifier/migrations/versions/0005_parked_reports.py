"""Provider reports about a send still being recorded are parked; the purge scans unpurged rows.

Revision ID: notifier_0005
Revises: notifier_0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "notifier_0005"
down_revision = "notifier_0004"
branch_labels = None
depends_on = None

UNPURGED = sa.text("purged_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "notifier_parked_reports",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "attempt_id",
            sa.Integer(),
            sa.ForeignKey("notifier_attempts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("reference", sa.String(200), nullable=True),
        sa.Column("notification_id", sa.String(64), nullable=True),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_notifier_parked_reports_attempt", "notifier_parked_reports", ["attempt_id"])
    op.create_index(
        "ix_notifier_parked_reports_received", "notifier_parked_reports", ["received_at"]
    )
    op.create_index(
        "ix_notifier_notifications_unpurged",
        "notifier_notifications",
        ["updated_at"],
        sqlite_where=UNPURGED,
        postgresql_where=UNPURGED,
    )


def downgrade() -> None:
    op.drop_index("ix_notifier_notifications_unpurged", table_name="notifier_notifications")
    op.drop_index("ix_notifier_parked_reports_received", table_name="notifier_parked_reports")
    op.drop_index("ix_notifier_parked_reports_attempt", table_name="notifier_parked_reports")
    op.drop_table("notifier_parked_reports")
