"""SendGrid events keep the touch they are about and what they count as
(``nurture.store.db.WebhookEvent.touch_key``, ``engagement``): engagement per cadence step.
Events received before are classified from what was kept of them.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels = None
depends_on = None

_BY_EVENT = {
    "delivered": "delivered",
    "bounce": "bounced",
    "dropped": "bounced",
    "open": "open",
    "click": "click",
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "unsubscribe",
    "spamreport": "spamreport",
}
_UNSUBSCRIBE_CLICK = "click on the unsubscribe link"
"""How the webhook marked a click on our own unsubscribe link (its ``detail``)."""


def _classified(payload: str, detail: str | None) -> tuple[str | None, str | None]:
    """The rules of ``nurture.domain.engagement`` as they were when this revision was written
    (a migration must not change with later code)."""
    try:
        item: Any = json.loads(payload)
    except ValueError:
        return None, None
    if not isinstance(item, dict):
        return None, None
    touch = item.get("touch_id")
    touch_key = touch if isinstance(touch, str) and touch and len(touch) <= 300 else None
    kind = _BY_EVENT.get(str(item.get("event", "")))
    if item.get("event") == "bounce" and item.get("type") == "blocked":
        kind = None
    elif kind == "open" and item.get("sg_machine_open") is True:
        kind = "machine_open"
    elif kind == "click" and detail and detail.startswith(_UNSUBSCRIBE_CLICK):
        kind = None
    return touch_key, kind


def upgrade() -> None:
    with op.batch_alter_table("webhookevent") as table:
        table.add_column(sa.Column("touch_key", sa.String(300), nullable=True))
        table.add_column(sa.Column("engagement", sa.String(20), nullable=True))
        table.create_index("ix_webhookevent_touch_key", ["touch_key"])
    events = sa.table(
        "webhookevent",
        sa.column("sg_event_id", sa.String),
        sa.column("payload", sa.String),
        sa.column("detail", sa.String),
        sa.column("touch_key", sa.String),
        sa.column("engagement", sa.String),
    )
    connection = op.get_bind()
    rows = connection.execute(sa.select(events.c.sg_event_id, events.c.payload, events.c.detail))
    updates = []
    for sg_event_id, payload, detail in rows:
        touch_key, engagement = _classified(payload, detail)
        if touch_key or engagement:
            updates.append({"id": sg_event_id, "touch_key": touch_key, "engagement": engagement})
    if updates:
        connection.execute(
            events.update()
            .where(events.c.sg_event_id == sa.bindparam("id"))
            .values(touch_key=sa.bindparam("touch_key"), engagement=sa.bindparam("engagement")),
            updates,
        )


def downgrade() -> None:
    with op.batch_alter_table("webhookevent") as table:
        table.drop_index("ix_webhookevent_touch_key")
        table.drop_column("engagement")
        table.drop_column("touch_key")
