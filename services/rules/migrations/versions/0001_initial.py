"""Rules, templates, their versions, and the audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _current(name: str, *extra: sa.Column[bool]) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        *extra,
    )


def _versions(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(200), nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )


def upgrade() -> None:
    _current("rules_rules", sa.Column("enabled", sa.Boolean, nullable=False))
    op.create_index("ix_rules_rules_enabled", "rules_rules", ["enabled"])
    _versions("rules_rule_versions")
    _current("rules_templates")
    _versions("rules_template_versions")
    op.create_table(
        "rules_audit",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("object_id", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_rules_audit_at", "rules_audit", ["at"])
    op.create_index("ix_rules_audit_object", "rules_audit", ["kind", "object_id"])


def downgrade() -> None:
    op.drop_table("rules_audit")
    op.drop_table("rules_template_versions")
    op.drop_table("rules_templates")
    op.drop_table("rules_rule_versions")
    op.drop_table("rules_rules")
