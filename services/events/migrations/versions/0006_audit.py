"""The audit log of changes made through the API (agencies, keys, callbacks, limits, types).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "events_audit",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("object_id", sa.String(600), nullable=False),
        sa.Column("changes", _JSON, nullable=False),
    )
    op.create_index("ix_events_audit_object", "events_audit", ["kind", "object_id"])
    op.create_index("ix_events_audit_actor", "events_audit", ["actor"])


def downgrade() -> None:
    op.drop_table("events_audit")
