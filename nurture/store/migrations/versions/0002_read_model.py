"""The read model (``nurture.store.read_model``) and time in stage on stage transitions.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _key() -> sa.Column:
    return sa.Column("key", sa.String(300), nullable=False)


def _ix(table: str, column: str) -> sa.Index:
    """What ``Field(index=True)`` makes, ``ix_<table>_<column>``; created with its table."""
    return sa.Index(f"ix_{table}_{column}", column)


def upgrade() -> None:
    with op.batch_alter_table("stagetransition") as batch:  # plain ALTER TABLE ADD on SQLite too
        batch.add_column(sa.Column("seconds_in_from_stage", sa.Float(), nullable=True))
        batch.add_column(sa.Column("handoff", sa.Integer(), nullable=True))

    op.create_table(
        "lead",
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("workflow_id", sa.String(220), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("company", sa.String(), nullable=True),
        sa.Column("title", sa.String(), nullable=True),
        sa.Column("industry", sa.String(200), nullable=True),
        sa.Column("country", sa.String(100), nullable=True),
        sa.Column("segment", sa.String(64), nullable=True),
        sa.Column("campaign", sa.String(200), nullable=True),
        sa.Column("stage", sa.String(20), nullable=False),
        _at("stage_since", nullable=True),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("grade", sa.String(2), nullable=False),
        sa.Column("owner", sa.String(100), nullable=True),
        _at("created_at", nullable=True),
        sa.Column("handoffs", sa.Integer(), nullable=False),
        sa.Column("touches_sent", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(10), nullable=True),
        sa.Column("amount", sa.Float(), nullable=True),
        _at("closed_at", nullable=True),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("lead_id"),
        sa.Index("ix_lead_campaign_created", "campaign", "created_at"),
        _ix("lead", "segment"),
        _ix("lead", "stage"),
        _ix("lead", "owner"),
        _ix("lead", "created_at"),
    )

    op.create_table(
        "leadevent",
        _key(),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        _at("at"),
        _at("received_at"),
        sa.Column("url", sa.String(), nullable=True),
        sa.Column("campaign", sa.String(200), nullable=True),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("score_after", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
        sa.Index("ix_leadevent_lead_at", "lead_id", "at"),
        sa.Index("ix_leadevent_campaign_at", "campaign", "at"),
        _ix("leadevent", "type"),
        _ix("leadevent", "at"),
    )

    op.create_table(
        "scorechange",
        _key(),
        sa.Column("lead_id", sa.String(200), nullable=False),
        _at("at"),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column("score_after", sa.Integer(), nullable=False),
        sa.Column("cause", sa.String(20), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
        sa.Index("ix_scorechange_lead_at", "lead_id", "at"),
        _ix("scorechange", "at"),
    )

    op.create_table(
        "handoff",
        _key(),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        _at("at"),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("grade", sa.String(2), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("instant", sa.Boolean(), nullable=False),
        sa.Column("qualified_by", sa.String(), nullable=False),
        sa.Column("campaign", sa.String(200), nullable=True),
        sa.Column("segment", sa.String(64), nullable=True),
        sa.Column("rep", sa.String(100), nullable=True),
        sa.Column("touches_before", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        _at("status_at", nullable=True),
        sa.Column("reject_reason", sa.String(), nullable=True),
        sa.Column("rejected_by", sa.String(100), nullable=True),
        sa.Column("misses", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
        _ix("handoff", "lead_id"),
        _ix("handoff", "at"),
        _ix("handoff", "campaign"),
        _ix("handoff", "status"),
    )

    op.create_table(
        "salesassignment",
        _key(),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("handoff", sa.Integer(), nullable=False),
        sa.Column("rep", sa.String(100), nullable=False),
        _at("at"),
        _at("due_at", nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        _at("responded_at", nullable=True),
        sa.Column("response", sa.String(20), nullable=True),
        sa.Column("seconds_to_response", sa.Float(), nullable=True),
        sa.Column("misses", sa.Integer(), nullable=False),
        _at("first_missed_at", nullable=True),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.Column("escalated_to", sa.String(), nullable=True),
        sa.Column("reassigned_to", sa.String(100), nullable=True),
        sa.PrimaryKeyConstraint("key"),
        sa.Index("ix_salesassignment_rep_at", "rep", "at"),
        _ix("salesassignment", "lead_id"),
        _ix("salesassignment", "at"),
    )

    op.create_table(
        "touch",
        _key(),
        sa.Column("lead_id", sa.String(200), nullable=False),
        _at("at"),
        sa.Column("cadence", sa.String(64), nullable=False),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("detail", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
        sa.Index("ix_touch_lead_status_at", "lead_id", "status", "at"),
        _ix("touch", "at"),
        _ix("touch", "status"),
    )

    op.create_table(
        "outcome",
        _key(),
        sa.Column("lead_id", sa.String(200), nullable=False),
        _at("at"),
        sa.Column("result", sa.String(10), nullable=False),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("rep", sa.String(100), nullable=False),
        sa.Column("handoff", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
        _ix("outcome", "lead_id"),
        _ix("outcome", "at"),
    )

    op.create_table(
        "campaign",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(64), nullable=True),
        sa.Column("description", sa.String(), nullable=False),
        _at("created_at"),
        sa.PrimaryKeyConstraint("name"),
    )

    op.create_table(
        "campaigncost",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign", sa.String(200), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("note", sa.String(), nullable=False),
        _at("recorded_at"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign", "period_start", "period_end"),  # unnamed, as the model
        _ix("campaigncost", "campaign"),
    )


def downgrade() -> None:
    for table in (
        "campaigncost",
        "campaign",
        "outcome",
        "touch",
        "salesassignment",
        "handoff",
        "scorechange",
        "leadevent",
        "lead",
    ):
        op.drop_table(table)  # its indexes go with it
    with op.batch_alter_table("stagetransition") as batch:  # SQLite: copies the table
        batch.drop_column("handoff")
        batch.drop_column("seconds_in_from_stage")
