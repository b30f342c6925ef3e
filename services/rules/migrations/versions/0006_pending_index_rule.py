"""The partial index of pending timers also holds their rule (and state, without which SQLite
reads the table): counting pending timers per rule (the console's rules list, and what
disabling a rule cancels) reads that index alone instead of the (rule, subject, source, state)
index, which grows with every timer ever fired.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PENDING = sa.text("state = 'pending'")


def _pending_index(columns: list[str]) -> None:
    op.drop_index("ix_rules_timers_pending", table_name="rules_timers")
    op.create_index(
        "ix_rules_timers_pending",
        "rules_timers",
        columns,
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )


def upgrade() -> None:
    _pending_index(["due_at", "rule_id", "state"])


def downgrade() -> None:
    _pending_index(["due_at"])
