"""Website tracking (``nurture.store.tracking``): sites and their public keys, visitors, and
the events of visitors no lead is known for yet.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels = None
depends_on = None

PERSONAL = {"personal": True}


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "site",
        sa.Column("site_key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("origins", sa.String(), nullable=False),
        sa.Column("consent_default", sa.String(10), nullable=False),
        _at("created_at"),
        _at("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("site_key"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "visitor",
        sa.Column("visitor_key", sa.String(64), nullable=False),
        sa.Column("site_key", sa.String(64), nullable=False),
        sa.Column("lead_id", sa.String(200), nullable=True),
        _at("identified_at", nullable=True),
        _at("first_seen_at"),
        _at("last_seen_at"),
        sa.Column("ip", sa.String(64), nullable=True, info=PERSONAL),
        sa.Column("country", sa.String(64), nullable=True, info=PERSONAL),
        sa.Column("city", sa.String(200), nullable=True, info=PERSONAL),
        sa.Column("organisation", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("visitor_key"),
        sa.Index("ix_visitor_lead_id", "lead_id"),
        sa.Index("ix_visitor_last_seen_at", "last_seen_at"),
    )
    op.create_table(
        "visitorevent",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("visitor_key", sa.String(64), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        _at("at"),
        _at("received_at"),
        sa.Column("url", sa.String(), nullable=True, info=PERSONAL),
        sa.Column("props", sa.String(), nullable=False, info=PERSONAL),
        sa.PrimaryKeyConstraint("event_id"),
        sa.Index("ix_visitorevent_visitor_at", "visitor_key", "at"),
        sa.Index("ix_visitorevent_received_at", "received_at"),
    )


def downgrade() -> None:
    op.drop_table("visitorevent")
    op.drop_table("visitor")
    op.drop_table("site")
