"""The lead's core driven as its workflow drives it, without Temporal: a world of plain answers
instead of activities, a clock that moves only when told, plain queues instead of pumps.

For tests of a lead's whole life (``tests/lead_driver.py``) and for synthetic populations
(``bench/population.py``): both get exactly the decisions, facts and keys a running lead makes.

The loop is the workflow's (``workflows/lead_shell.py``): apply what came in, carry out queued work,
enrol a lead that has no cadence, do what is due. Rep actions go through the same all-or-
nothing rule as the workflow's updates: refused when the validator says no, undone when they
fail half-way. The world answers each ask the way the activities would. The caller gives the
rules (loading them from ``config/`` is a layer above the core).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from nurture.contract.ledger import Fact, FactBatch
from nurture.contract.messages import (
    AssignRequest,
    CrmLeadUpsert,
    CrmNote,
    EmailRequest,
    EmailResult,
    LeadState,
    RepAction,
    TaskRequest,
)
from nurture.core import facts
from nurture.core.base import Logger, Run
from nurture.core.commands import (
    Ask,
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
from nurture.domain.routing import choose_available
from nurture.domain.rules import Rules

EVERY_PATCH = Patches.every()
"""What a lead started by today's code runs with."""


class Ledger(Queue[Fact]):
    """Facts for the read model, and when the latest of them was reported."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        super().__init__()
        self._clock = clock
        self.reported_at: datetime | None = None

    def start(self) -> None:
        self.reported_at = self._clock()


class Quiet:
    """A log that keeps nothing (a population's thousand provider errors are not news)."""

    def warning(self, msg: str, *args: Any) -> None:
        pass


@dataclass
class World:
    """What the activities would answer, and what was asked of them."""

    rules: Rules
    suppressed: set[str] = field(default_factory=set)
    """Addresses on the suppression list: sending to them answers ``suppressed``."""
    broken_templates: set[str] = field(default_factory=set)
    """Templates that cannot be rendered: sending them fails with a template error."""
    reps_away: bool = False
    """Every candidate is away or full: routing gives the lead to the fallback owner."""
    first_turn: int = 0
    """Where each pool's round robin starts (the turns other leads took before this one)."""
    sent: list[EmailRequest] = field(default_factory=list)
    tasks: int = 0
    asks: list[Ask] = field(default_factory=list)
    turns: Counter[str] = field(default_factory=Counter)

    def answer(self, ask: Ask, lead: SimulatedLead) -> Any:
        self.asks.append(ask)
        if isinstance(ask, ReadRules):
            return None if ask.known_version == self.rules.version else self.rules
        if isinstance(ask, SendEmail):
            return self.send(ask.request, lead)
        if isinstance(ask, CreateTask):
            return self.create_task(ask.request)
        return self.assign(ask.request, lead.clock)

    def send(self, request: EmailRequest, lead: SimulatedLead) -> EmailResult | Failed:
        if request.template in self.broken_templates:
            return Failed(
                "TemplateError: no such variable",
                unrenderable="no such variable",
                kind="TemplateError",
            )
        if request.to_email in self.suppressed:
            return EmailResult(
                key=request.key,
                message_id=None,
                status="suppressed",
                detail="address on the suppression list",
            )
        self.sent.append(request)
        return EmailResult(key=request.key, message_id=f"m-{len(self.sent)}", status="sent")

    def create_task(self, request: TaskRequest) -> int:
        self.tasks += 1
        return self.tasks

    def assign(self, request: AssignRequest, now: datetime) -> str | None:
        """The routing activity's choice: round robin over the available candidates, never
        anyone excluded (``activities/routing.py``, with no rep holding open leads)."""
        fallback = request.fallback_owner
        if self.reps_away:
            return fallback if fallback and fallback not in request.exclude else None
        turn = self.first_turn + self.turns[request.pool]
        if request.strategy != "first":
            self.turns[request.pool] += 1
        rep, _ = choose_available(
            request.candidates,
            turn,
            request.strategy,
            request.reps,
            {},
            now.date(),
            fallback,
            request.exclude,
        )
        return rep


class SimulatedLead:
    """One lead's core, its clock and its world."""

    def __init__(
        self,
        lead_id: str,
        now: datetime,
        world: World,
        *,
        run: Run | None = None,
        log: Logger | None = None,
        patches: Patches = EVERY_PATCH,
        undoable: bool = True,
    ) -> None:
        self.world = world
        self.clock = now
        self.undoable = undoable
        """Rep actions can be undone when they fail half-way (as the workflow's updates are);
        a caller whose actions never fail can save the copy of the state this takes."""
        self.crm: Queue[CrmLeadUpsert | CrmNote] = Queue()
        self.ledger = Ledger(lambda: self.clock)
        self.core = LeadCore(
            LeadState(lead_id=lead_id, profile=LeadProfile(lead_id=lead_id)),
            run=run or Run(f"lead-{lead_id}", "run-1", "run-1"),
            clock=lambda: self.clock,
            log=log or Quiet(),
            inbox=[],
            effects=[],
            crm=self.crm,
            ledger=self.ledger,
        )
        self.core.patches = patches
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

    def next_due(self) -> datetime | None:
        """When the lead next has something to do of its own (None: not before a signal)."""
        return self.core.next_wakeup()

    def step_to(self, at: datetime) -> None:
        """Move the clock to ``at`` and do what is due then; the caller knows nothing is due
        before it (``at`` is at most :meth:`next_due`): one step of :meth:`run_until`."""
        self.clock = max(self.clock, at)
        self.settle()

    def run_until(self, until: datetime) -> None:
        """Let time pass up to ``until``, waking at every moment something is due on the way."""
        while (wake := self.core.next_wakeup()) is not None and wake <= until:
            self.clock = max(self.clock, wake)
            self.settle()
        self.clock = max(self.clock, until)
        self.settle()

    def wait(self, delta: timedelta) -> None:
        self.run_until(self.clock + delta)

    def act(self, error: str | None, action: Callable[[], None], request: RepAction) -> bool:
        """A rep action as the workflow's update runs it: refused (False) when ``error``
        says why, otherwise applied all or nothing."""
        if error:
            return False
        undo = self.core.undo_point() if self.undoable else None
        try:
            action()
        except Exception as err:
            if undo is not None:
                undo()
            self.core.bad_input(f"action by {request.rep}", err)
            raise
        self.settle()
        return True

    def written(self) -> FactBatch:
        """Every fact reported so far and the lead's row, as one write to the read model when
        the latest was reported (the workflow writes the same facts as they come, at most
        ``FACTS_PER_BATCH`` at a time, each time with the lead's row as it is then)."""
        reported = list(self.ledger.items)
        self.ledger.items.clear()
        now = self.ledger.reported_at or self.clock
        return facts.batch(self.state, self.core.snapshot(), reported, now)
