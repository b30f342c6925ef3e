"""Due-time index of pending timers only (partial), instead of one on (state, due_at).

With `state` leading an index, SQLite (no statistics) chose it for updates by id list and
scanned every pending timer on each update; the partial index holds only what the scheduler
looks for, so its size follows the pending timers, not the history of fired ones.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    op.drop_index("ix_rules_timers_due", table_name="rules_timers")
    op.create_index(
        "ix_rules_timers_pending",
        "rules_timers",
        ["due_at"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_rules_timers_pending", table_name="rules_timers")
    op.create_index("ix_rules_timers_due", "rules_timers", ["state", "due_at"])
