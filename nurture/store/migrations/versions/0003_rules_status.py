"""The rules version in force and the last refused edit (``nurture.store.rules_status``).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "rulesstatus",
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        _at("loaded_at"),
        sa.Column("config_dir", sa.String(), nullable=False),
        sa.Column("templates_dir", sa.String(), nullable=True),
        _at("rejected_at", nullable=True),
        sa.Column("rejected_problems", sa.String(), nullable=True),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("rulesstatus")
