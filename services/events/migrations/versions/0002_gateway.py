"""Agency callbacks and their outbox, limits and daily usage, event-type schemas, content purge.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def _at(name: str, *, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _agency() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "agency_id", sa.String(64), sa.ForeignKey("events_agencies.id"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "events_callbacks",
        sa.Column(
            "agency_id", sa.String(64), sa.ForeignKey("events_agencies.id"), primary_key=True
        ),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("secret", sa.String(256), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        _at("failing_since", nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        _at("last_success_at", nullable=True),
        _at("suspended_at", nullable=True),
        _at("updated_at"),
    )
    op.create_table(
        "events_callback_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _agency(),
        sa.Column("notification_id", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        _at("next_attempt_at"),
        _at("created_at"),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index(
        "ix_events_callback_outbox_due", "events_callback_outbox", ["next_attempt_at", "id"]
    )
    op.create_index("ix_events_callback_outbox_agency", "events_callback_outbox", ["agency_id"])
    op.create_table(
        "events_limits",
        sa.Column(
            "agency_id", sa.String(64), sa.ForeignKey("events_agencies.id"), primary_key=True
        ),
        sa.Column("requests_per_minute", sa.Integer, nullable=True),
        sa.Column("daily_events", sa.Integer, nullable=True),
        _at("updated_at"),
    )
    op.create_table(
        "events_daily_usage",
        sa.Column("agency_id", sa.String(64), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("accepted", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("agency_id", "day", name="pk_events_daily_usage"),
    )
    op.create_table(
        "events_event_types",
        _agency(),
        sa.Column("type", sa.String(512), nullable=False),
        sa.Column("json_schema", _JSON, nullable=False),
        _at("created_at"),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("agency_id", "type", name="pk_events_event_types"),
    )
    op.add_column("events_events", _at("purged_at", nullable=True))
    op.create_index("ix_events_events_received_at", "events_events", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_events_events_received_at", "events_events")
    with op.batch_alter_table("events_events") as batch:
        batch.drop_column("purged_at")
    op.drop_table("events_event_types")
    op.drop_table("events_daily_usage")
    op.drop_table("events_limits")
    op.drop_index("ix_events_callback_outbox_agency", "events_callback_outbox")
    op.drop_index("ix_events_callback_outbox_due", "events_callback_outbox")
    op.drop_table("events_callback_outbox")
    op.drop_table("events_callbacks")
