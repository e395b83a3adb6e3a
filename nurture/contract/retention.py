"""What crosses the retention sweep's boundary (``workflows/retention.py``): its names, its
request (what the schedule passes), and what a batch of cold leads looks like."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from pydantic import BaseModel

RETENTION_WORKFLOW: Final = "RetentionSweep"
RETENTION_SCHEDULE: Final = "nurture-retention"
FIND_COLD_LEADS: Final = "retention_find_cold_leads"
COLD_STAGES: Final = ("nurturing", "recycled", "suppressed", "lost")
"""Where a lead can go cold: not while sales works it, and not once it is a customer (won)."""


class RetentionRequest(BaseModel):
    cold_after: timedelta
    """A lead in a cold stage with no event and no stage change for this long is erased."""
    batch: int = 50
    """How many erasures run at once (each a child workflow, like 'nurture lead forget')."""


class ColdLeadQuery(BaseModel):
    cutoff: datetime
    limit: int


class ColdLead(BaseModel):
    lead_id: str
    lead_ref: str
    """The keyed digest of the lead id: the erasure's workflow id and its receipt's name."""
