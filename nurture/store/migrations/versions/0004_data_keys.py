"""Data keys for payload encryption (``nurture.store.data_keys``).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datakey",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(220), nullable=False),
        sa.Column("master_key_id", sa.String(64), nullable=True),
        sa.Column("wrapped", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("shredded_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id"),
    )
    op.create_index("ix_datakey_owner", "datakey", ["owner"])
    op.create_index("ix_datakey_shredded_at", "datakey", ["shredded_at"])


def downgrade() -> None:
    op.drop_index("ix_datakey_shredded_at", table_name="datakey")
    op.drop_index("ix_datakey_owner", table_name="datakey")
    op.drop_table("datakey")
