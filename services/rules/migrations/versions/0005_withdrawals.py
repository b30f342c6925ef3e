"""Background cancellation of a withdrawn rule's timers: the job table.

Its chunks walk the existing (rule, subject, source, state) index from a cursor; an index of
pending timers by rule was tried and dropped: maintaining it on every fired timer cost the
scheduler a quarter of its SQLite throughput.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rules_withdrawals",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rule_id", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resume_after", sa.Text, nullable=False),
        sa.Column("remaining", sa.Integer, nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_rules_withdrawals_rule_id", "rules_withdrawals", ["rule_id"])


def downgrade() -> None:
    op.drop_table("rules_withdrawals")
