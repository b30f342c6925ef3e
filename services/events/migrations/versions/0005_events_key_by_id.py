"""Key events_events by (id, source) and drop the index on id alone.

Both lookups the service makes (by id with its source, and by id alone for
`GET /v1/events/{id}`) are served by a primary key that starts with `id`, so the separate
index on `id` only cost every insert a second write into a random place of a second index.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _rekey(["id", "source"])
    op.drop_index("ix_events_events_id", "events_events")


def downgrade() -> None:
    op.create_index("ix_events_events_id", "events_events", ["id"])
    _rekey(["source", "id"])


def _rekey(columns: list[str]) -> None:
    # SQLite cannot alter a primary key: batch mode copies the table (nothing references it).
    # PostgreSQL swaps the constraint in place, in one ALTER TABLE.
    with op.batch_alter_table("events_events") as batch:
        batch.drop_constraint("pk_events_events", type_="primary")
        batch.create_primary_key("pk_events_events", columns)
