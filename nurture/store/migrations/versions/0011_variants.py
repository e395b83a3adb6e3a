"""A/B tests: the variant each touch sent (``touch.variant``; the touches of a step found by
``ix_touch_cadence_step``) and the winners winner rules chose
(``nurture.store.variant_winners.VariantWinnerRecord``).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision: str | None = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("touch") as batch:
        batch.add_column(sa.Column("variant", sa.String(32), nullable=True))
    op.create_index("ix_touch_cadence_step", "touch", ["cadence", "step"])
    op.create_table(
        "variantwinner",
        sa.Column("cadence", sa.String(64), nullable=False),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("variant", sa.String(32), nullable=False),
        sa.Column("because", sa.String(500), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("cadence", "step"),
    )


def downgrade() -> None:
    op.drop_table("variantwinner")
    op.drop_index("ix_touch_cadence_step", table_name="touch")
    with op.batch_alter_table("touch") as batch:
        batch.drop_column("variant")
