"""Each agency's own preferences for a citizen, apart from the shared directory row.

Shared rows an agency last replaced (`changed_by` = `agency:<id>`) become that agency's own:
their contact details, channels, quiet hours, zone and locale move to its layer and leave the
shared row, so they no longer apply to other agencies' notifications. Their opt-outs stay
shared as well (they may hold the citizen's STOP; never send more than before).

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


MOVED = ("channels", "quiet_start", "quiet_end", "timezone", "locale", "phone", "email")


def upgrade() -> None:
    agency_layers = op.create_table(
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
    _move_agency_rows(agency_layers)


def _move_agency_rows(agency_layers: sa.Table) -> None:
    shared = sa.table(
        "notifier_preferences",
        sa.column("citizen_id", sa.String()),
        sa.column("opt_out", sa.JSON()),
        sa.column("updated_at", sa.DateTime(timezone=True)),
        sa.column("changed_by", sa.String()),
        sa.column("changed_at", sa.DateTime(timezone=True)),
        *(sa.column(name, sa.JSON() if name == "channels" else sa.String()) for name in MOVED),
    )
    connection = op.get_bind()
    by_agency = shared.c.changed_by.like("agency:%")
    rows = connection.execute(sa.select(shared).where(by_agency)).mappings().all()
    if not rows:
        return
    connection.execute(
        sa.insert(agency_layers),
        [
            {
                "citizen_id": row["citizen_id"],
                "agency_id": row["changed_by"].removeprefix("agency:"),
                "opt_out": row["opt_out"] or [],
                "changed_at": row["changed_at"] or row["updated_at"],
                **{name: row[name] for name in MOVED},
            }
            for row in rows
        ],
    )
    cleared = dict.fromkeys((*MOVED, "changed_by", "changed_at"))
    connection.execute(sa.update(shared).where(by_agency).values(**cleared))


def downgrade() -> None:
    op.drop_table("notifier_agency_preferences")
