"""Erasure: the suppression list by keyed digest, the installation's salt, erasure receipts.

Existing suppression entries are kept: each address is replaced by its digest under a salt
made here (``nurture.store.salted``), so no plain address stays on the list. Going back down
cannot restore the addresses: the list comes back empty (say so before downgrading).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from nurture.store.salted import SALT_NAME, address_digest

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _suppression_table(key: str, length: int) -> sa.Table:
    """The list keyed by ``key``: the address (before) or its digest (since)."""
    return op.create_table(
        "suppression",
        sa.Column(key, sa.String(length), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("lead_id", sa.String(200), nullable=True),
        _at("at"),
        sa.PrimaryKeyConstraint(key),
    )


def upgrade() -> None:
    salt_table = op.create_table(
        "installsalt",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("value", sa.String(128), nullable=False),
        _at("created_at"),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "erasurereceipt",
        sa.Column("erasure_id", sa.String(64), nullable=False),
        sa.Column("lead_ref", sa.String(64), nullable=False),
        _at("requested_at"),
        _at("finished_at"),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("erased", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("erasure_id"),
        sa.Index("ix_erasurereceipt_lead_ref", "lead_ref"),
    )
    bind = op.get_bind()
    old = sa.table(
        "suppression",
        sa.column("email", sa.String),
        sa.column("reason", sa.String),
        sa.column("source", sa.String),
        sa.column("lead_id", sa.String),
        sa.column("at", sa.DateTime(timezone=True)),
    )
    entries = bind.execute(sa.select(old)).mappings().all()
    op.drop_table("suppression")
    new = _suppression_table("email_hash", 64)
    if not entries:
        return  # the salt is made on first use
    salt = secrets.token_bytes(32)
    op.bulk_insert(
        salt_table,
        [{"name": SALT_NAME, "value": salt.hex(), "created_at": datetime.now(UTC)}],
    )
    hashed: dict[str, dict[str, object]] = {}
    for entry in entries:  # two spellings of one address: the first reason is kept
        digest = address_digest(salt, entry["email"])
        hashed.setdefault(digest, {**entry, "email_hash": digest})
    op.bulk_insert(
        new,
        [{k: v for k, v in row.items() if k != "email"} for row in hashed.values()],
    )


def downgrade() -> None:
    op.drop_table("suppression")
    _suppression_table("email", 320)
    op.drop_table("erasurereceipt")
    op.drop_table("installsalt")
