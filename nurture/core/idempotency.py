"""Idempotency keys of what a lead sends out, derived from what happened: the handoff and the
SLA miss an alert is about, the rep's turn a CRM push belongs to, the moment a digest was
made. Two sends of the same thing share a key (and the activity sends it once); nothing else
ever does.

Runs from before the ``keys-from-what-happened`` patch number their alerts and pushes with the
lead's ``transitions`` counter, as they always did (``nurture/core/base.py``).
"""

from __future__ import annotations

import re
from datetime import datetime

from nurture.contract.messages import EmailCategory, LeadState


def occasion(state: LeadState, category: EmailCategory) -> str:
    """What a rep alert is about: ``h2`` (the second handoff), ``h2-miss1`` (its first SLA
    miss: the escalation and the reassignment it caused)."""
    handoff = state.handoff
    if handoff is None:
        return "h0"
    if category in ("escalation", "reassigned"):
        return f"h{handoff.number}-miss{len(handoff.missed_by)}"
    return f"h{handoff.number}"


def alert_key(state: LeadState, category: EmailCategory, rep: str, at: datetime) -> str:
    """A rep alert: one per occasion and recipient; an activity digest, one per moment."""
    about = f"{at:%Y%m%dT%H%M%S.%f}" if category == "activity" else occasion(state, category)
    return f"notify:{state.lead_id}:{category}:{about}:{rep}"


def crm_push_key(state: LeadState, status: str) -> str:
    """A push of the lead's CRM record: one per status within a rep's turn."""
    slug = re.sub(r"[^a-z0-9]+", "-", status.lower()).strip("-")
    return f"{state.lead_id}:crm:turn{len(state.assignments)}:{slug}"


def crm_note_key(state: LeadState, at: datetime) -> str:
    """An activity digest logged in the CRM: one per moment."""
    return f"{state.lead_id}:activity:{at:%Y%m%dT%H%M%S.%f}"
