"""Every rules version loaded, with its author and what changed
(``nurture.store.rules_history.RulesVersionRecord``).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rulesversion",
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("first_loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.String(300), nullable=False),
        sa.Column("previous", sa.String(100), nullable=True),
        sa.Column("changes", sa.String(), nullable=False),
        sa.Column("snapshot", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("version"),
        sa.Index("ix_rulesversion_first_loaded_at", "first_loaded_at"),
    )


def downgrade() -> None:
    op.drop_table("rulesversion")
