"""The lead's core driven as its workflow drives it, with a world of plain answers instead of
activities: for tests of a lead's whole life that run in microseconds (``nurture/core``).

The loop is the workflow's (``workflows/lead.py``): apply what came in, carry out queued work,
enrol a lead that has no cadence, do what is due. Rep actions go through the same all-or-
nothing rule as the workflow's updates: refused when the validator says no, undone when they
fail half-way. The world answers each ask the way the activities would.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from nurture.config.config_loader import load_rules
from nurture.contract.ledger import Fact
from nurture.contract.messages import (
    CrmLeadUpsert,
    CrmNote,
    EmailRequest,
    EmailResult,
    LeadState,
    RepAction,
)
from nurture.core.base import Run
from nurture.core.commands import (
    Ask,
    AssignRep,
    CreateTask,
    Failed,
    Queue,
    ReadRules,
    SendEmail,
    Step,
)
from nurture.core.lead import LeadCore
from nurture.core.patches import Patches
from nurture.domain.leads import LeadEvent, LeadProfile
from nurture.domain.rules import Rules

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
EVERY_PATCH = Patches(**{flag.name: True for flag in fields(Patches)})


@dataclass
class World:
    """What the activities would answer, and what was asked of them."""

    rules: Rules = SHIPPED_RULES
    suppressed: set[str] = field(default_factory=set)
    """Addresses on the suppression list: sending to them answers ``suppressed``."""
    broken_templates: set[str] = field(default_factory=set)
    """Templates that cannot be rendered: sending them fails with a template error."""
    reps_away: bool = False
    """Every candidate is away or full: routing gives the lead to the fallback owner."""
    sent: list[EmailRequest] = field(default_factory=list)
    tasks: int = 0
    asks: list[Ask] = field(default_factory=list)

    def answer(self, ask: Ask, lead: Lead) -> Any:
        self.asks.append(ask)
        if isinstance(ask, ReadRules):
            return None if ask.known_version == self.rules.version else self.rules
        if isinstance(ask, SendEmail):
            return self.send(ask.request, lead)
        if isinstance(ask, CreateTask):
            self.tasks += 1
            return self.tasks
        assert isinstance(ask, AssignRep)
        request = ask.request
        available = [] if self.reps_away else request.candidates
        fallback = [request.fallback_owner] if request.fallback_owner else []
        return next((rep for rep in [*available, *fallback] if rep not in request.exclude), None)

    def send(self, request: EmailRequest, lead: Lead) -> EmailResult | Failed:
        if request.category == "touch":
            lead.check_may_send(request)
        if request.template in self.broken_templates:
            return Failed("TemplateError: no such variable", unrenderable="no such variable")
        if request.to_email in self.suppressed:
            return EmailResult(key=request.key, message_id=None, status="suppressed", detail="x")
        self.sent.append(request)
        return EmailResult(key=request.key, message_id=f"m-{len(self.sent)}", status="sent")


class Lead:
    """One lead's core, its clock and its world."""

    def __init__(self, lead_id: str, now: datetime, world: World | None = None) -> None:
        self.world = world or World()
        self.clock = now
        self.crm: Queue[CrmLeadUpsert | CrmNote] = Queue()
        self.ledger: Queue[Fact] = Queue()
        self.core = LeadCore(
            LeadState(lead_id=lead_id, profile=LeadProfile(lead_id=lead_id)),
            run=Run(f"lead-{lead_id}", "run-1", "run-1"),
            clock=lambda: self.clock,
            log=logging.getLogger("tests.lead_driver"),
            inbox=[],
            effects=[],
            crm=self.crm,
            ledger=self.ledger,
        )
        self.core.patches = EVERY_PATCH
        self.drive(self.core.read_rules())
        self.core.begin_run(new=True)
        self.settle()

    @property
    def state(self) -> LeadState:
        return self.core.state

    def drive(self, step: Step[Any]) -> Any:
        answer: Any = None
        while True:
            try:
                ask = step.send(answer)
            except StopIteration as done:
                return done.value
            answer = self.world.answer(ask, self)

    def check_may_send(self, request: EmailRequest) -> None:
        """A marketing email is never asked for a lead whose email is suppressed."""
        assert not self.state.email_suppressed, f"touch {request.key} to a suppressed lead"

    def settle(self) -> None:
        """Work off everything queued, then do what is due now (the workflow's loop)."""
        core = self.core
        while core.inbox or core.effects:
            if core.inbox:
                item = core.inbox.pop(0)
                try:
                    self.drive(core.apply(item))
                except Exception as err:  # the workflow records it and goes on
                    core.bad_input("item", err)
            else:
                effect = core.effects.pop(0)
                if isinstance(effect, EmailRequest):
                    self.world.send(effect, self)
        core.enrol_if_idle()
        wake = core.next_wakeup()
        if wake is not None and wake <= self.clock:
            self.drive(core.timers_due())
            self.settle()

    def signal(self, item: LeadEvent | LeadProfile) -> None:
        self.core.inbox.append(item)
        self.settle()

    def wait(self, delta: timedelta) -> None:
        """Let time pass, waking at every moment something is due on the way."""
        until = self.clock + delta
        while (wake := self.core.next_wakeup()) is not None and wake <= until:
            self.clock = max(self.clock, wake)
            self.settle()
        self.clock = until
        self.settle()

    def act(self, error: str | None, action: Callable[[], None], request: RepAction) -> bool:
        """A rep action as the workflow's update runs it: refused (False) when ``error``
        says why, otherwise applied all or nothing."""
        if error:
            return False
        undo = self.core.undo_point()
        try:
            action()
        except Exception as err:
            undo()
            self.core.bad_input(f"action by {request.rep}", err)
            raise
        self.settle()
        return True
