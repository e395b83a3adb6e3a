"""The lead's core driven as its workflow drives it (``nurture/core/simulation.py``), with the
shipped rules and the checks a test wants on every ask: for tests of a lead's whole life that
run in microseconds (``nurture/core``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from nurture.config.config_loader import load_rules
from nurture.contract.messages import EmailRequest, EmailResult
from nurture.core import simulation
from nurture.core.commands import Failed
from nurture.core.simulation import EVERY_PATCH, SimulatedLead
from nurture.domain.rules import Rules

__all__ = ["CONFIG", "EVERY_PATCH", "SHIPPED_RULES", "WITH_CRM", "Lead", "World"]

CONFIG = Path(__file__).resolve().parents[1] / "config"
SHIPPED_RULES = load_rules(CONFIG)
WITH_CRM = SHIPPED_RULES.model_copy(
    update={
        "routing": SHIPPED_RULES.routing.model_copy(
            update={"crm": SHIPPED_RULES.routing.crm.model_copy(update={"enabled": True})}
        )
    }
)
"""The shipped rules with the CRM push on (leads in sales are pushed and their activity logged)."""


@dataclass
class World(simulation.World):
    """What the activities would answer (the shipped rules unless told otherwise), checking
    that the lead never asks for what it must not."""

    rules: Rules = SHIPPED_RULES

    def send(self, request: EmailRequest, lead: SimulatedLead) -> EmailResult | Failed:
        if request.category == "touch" and isinstance(lead, Lead):
            lead.check_may_send(request)
        return super().send(request, lead)


class Lead(SimulatedLead):
    """One lead's core, its clock and its world."""

    def __init__(self, lead_id: str, now: datetime, world: World | None = None) -> None:
        super().__init__(lead_id, now, world or World(), log=logging.getLogger("tests.lead_driver"))

    def check_may_send(self, request: EmailRequest) -> None:
        """A marketing email is never asked for a lead whose email is suppressed."""
        assert not self.state.email_suppressed, f"touch {request.key} to a suppressed lead"
