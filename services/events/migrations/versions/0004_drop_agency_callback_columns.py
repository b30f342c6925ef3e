"""Drop events_agencies.callback_url and callback_secret: callbacks live in events_callbacks.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode without the table rebuild: rebuilding drops events_agencies, which the
    # keys, callbacks and limits reference (foreign keys are on), so SQLite (3.35+) drops the
    # columns in place with ALTER TABLE ... DROP COLUMN, like PostgreSQL.
    with op.batch_alter_table("events_agencies", recreate="never") as batch:
        batch.drop_column("callback_secret")
        batch.drop_column("callback_url")


def downgrade() -> None:
    with op.batch_alter_table("events_agencies", recreate="never") as batch:
        batch.add_column(sa.Column("callback_url", sa.String(2048), nullable=True))
        batch.add_column(sa.Column("callback_secret", sa.String(256), nullable=True))
