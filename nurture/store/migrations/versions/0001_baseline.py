"""Baseline: the schema as the last release before migrations created it with ``create_all``.

A database made by that release has these tables and no ``alembic_version``;
:func:`nurture.store.migrations.migrate` stamps it with this revision instead of running it.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _ix(table: str, column: str) -> sa.Index:
    """What ``Field(index=True)`` makes, ``ix_<table>_<column>``; created with its table."""
    return sa.Index(f"ix_{table}_{column}", column)


def upgrade() -> None:
    op.create_table(
        "outboxmessage",
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("category", sa.String(20), nullable=False),
        sa.Column("to_email", sa.String(320), nullable=False),
        sa.Column("subject", sa.String(998), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("provider_message_id", sa.String(200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _at("created_at"),
        _at("sent_at", nullable=True),
        sa.PrimaryKeyConstraint("key"),
        _ix("outboxmessage", "lead_id"),
    )

    op.create_table(
        "stagetransition",
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("workflow_id", sa.String(220), nullable=False),
        _at("at"),
        sa.Column("from_stage", sa.String(20), nullable=True),
        sa.Column("to_stage", sa.String(20), nullable=False),
        sa.Column("by", sa.String(100), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(100), nullable=True),
        sa.PrimaryKeyConstraint("key"),
        _ix("stagetransition", "lead_id"),
        _ix("stagetransition", "at"),
        _ix("stagetransition", "to_stage"),
    )

    op.create_table(
        "roundrobinturn",
        sa.Column("pool", sa.String(200), nullable=False),
        sa.Column("turns", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("pool"),
    )

    op.create_table(
        "repassignment",
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("pool", sa.String(200), nullable=False),
        sa.Column("rep_id", sa.String(100), nullable=False),
        _at("at"),
        sa.PrimaryKeyConstraint("key"),
        _ix("repassignment", "lead_id"),
    )

    op.create_table(
        "suppression",
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("lead_id", sa.String(200), nullable=True),
        _at("at"),
        sa.PrimaryKeyConstraint("email"),
    )

    op.create_table(
        "webhookevent",
        sa.Column("sg_event_id", sa.String(100), nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("lead_id", sa.String(200), nullable=True),
        sa.Column("message_id", sa.String(200), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("detail", sa.String(), nullable=True),
        sa.Column("payload", sa.String(), nullable=False),
        _at("received_at"),
        sa.PrimaryKeyConstraint("sg_event_id"),
        _ix("webhookevent", "event"),
        _ix("webhookevent", "lead_id"),
        _ix("webhookevent", "status"),
    )

    op.create_table(
        "webhookpost",
        sa.Column("post_digest", sa.String(64), nullable=False),
        _at("received_at"),
        sa.PrimaryKeyConstraint("post_digest"),
        _ix("webhookpost", "received_at"),
    )

    op.create_table(
        "salestask",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("cadence", sa.String(64), nullable=False),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("instructions", sa.String(), nullable=False),
        sa.Column("phone", sa.String(60), nullable=True),
        sa.Column("address", sa.String(500), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        _at("created_at"),
        _at("due_at"),
        _at("closed_at", nullable=True),
        sa.Column("closed_by", sa.String(100), nullable=True),
        sa.Column("outcome", sa.String(40), nullable=True),
        sa.Column("note", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),  # unnamed, as create_all made it (PG: salestask_key_key)
        _ix("salestask", "lead_id"),
        _ix("salestask", "status"),
        _ix("salestask", "due_at"),
    )

    op.create_table(
        "apikey",
        sa.Column("id", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("rep_id", sa.String(100), nullable=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        _at("created_at"),
        _at("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    for table in (
        "apikey",
        "salestask",
        "webhookpost",
        "webhookevent",
        "suppression",
        "repassignment",
        "roundrobinturn",
        "stagetransition",
        "outboxmessage",
    ):
        op.drop_table(table)  # its indexes go with it
