"""Consent records and topic choices (``nurture.store.read_model.ConsentRow``,
``TopicChoiceRow``): how and when each person agreed to be emailed, and what they chose on
the preferences page.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None


def _at(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def _ix(table: str, column: str) -> sa.Index:
    return sa.Index(f"ix_{table}_{column}", column)


def upgrade() -> None:
    op.create_table(
        "consent",
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("lead_id", sa.String(200), nullable=False),
        _at("at"),
        _at("recorded_at"),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("text", sa.String(), nullable=True, info={"personal": True}),
        sa.Column("ip", sa.String(64), nullable=True, info={"personal": True}),
        sa.PrimaryKeyConstraint("key"),
        _ix("consent", "lead_id"),
        _ix("consent", "at"),
    )
    op.create_table(
        "topicchoice",
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("lead_id", sa.String(200), nullable=False),
        _at("at"),
        sa.Column("topic", sa.String(64), nullable=False),
        sa.Column("receives", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
        _ix("topicchoice", "lead_id"),
        _ix("topicchoice", "at"),
    )


def downgrade() -> None:
    op.drop_table("topicchoice")
    op.drop_table("consent")
