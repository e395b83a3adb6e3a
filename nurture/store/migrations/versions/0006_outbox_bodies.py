"""The outbox keeps each email's bodies as rendered (``nurture.store.db.OutboxMessage``), so
a person's export shows what they were sent.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outboxmessage") as table:
        table.add_column(sa.Column("text_body", sa.String(), nullable=True))
        table.add_column(sa.Column("html_body", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outboxmessage") as table:
        table.drop_column("html_body")
        table.drop_column("text_body")
