"""The retention sweep's activity: which leads went cold (``workflows/retention.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine
from temporalio import activity

from nurture.contract.retention import COLD_STAGES, FIND_COLD_LEADS, ColdLead, ColdLeadQuery
from nurture.privacy.erasure import lead_ref
from nurture.store.cold_leads import cold_leads


class RetentionActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @activity.defn(name=FIND_COLD_LEADS)
    def find_cold_leads(self, query: ColdLeadQuery) -> list[ColdLead]:
        return [
            ColdLead(lead_id=lead_id, lead_ref=lead_ref(self.engine, lead_id))
            for lead_id in cold_leads(self.engine, query.cutoff, query.limit, COLD_STAGES)
        ]

    def all(self) -> list[Callable[..., Any]]:
        return [self.find_cold_leads]
