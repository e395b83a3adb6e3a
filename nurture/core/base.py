"""What every part of the lead's core stands on: the lead's state, its rules, its clock, and
the plain bookkeeping of a lead (notes, stage changes, the read model's facts, rep alerts, CRM
pushes, score fit and decay, errors recorded on the lead).

No Temporal here (see ``nurture/core/lead.py`` for how the workflow drives the core); the
workflow hands the core its clock, its run's ids and a logger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, Protocol

from nurture.contract.ledger import Fact, LeadSnapshot
from nurture.contract.messages import (
    CrmLeadUpsert,
    CrmNote,
    Effect,
    EmailCategory,
    EmailRequest,
    LeadState,
    TransitionRecord,
)
from nurture.core import crm, facts, idempotency
from nurture.core.commands import Failed, Queue, ReadRules, Step
from nurture.core.context import rep_alert_context
from nurture.core.patches import Patches
from nurture.domain import scoring
from nurture.domain.leads import LeadEvent, LeadProfile
from nurture.domain.rules import Rules
from nurture.domain.stages import Stage

UNFORWARDED_KEPT = 100  # a digest lists the latest activity; the score counts all of it
FactArgs = ParamSpec("FactArgs")


class RulesNotLoaded(RuntimeError):
    """The lead was asked to decide before its rules were read (an update racing the start)."""


class Logger(Protocol):
    def warning(self, msg: str, *args: Any) -> None: ...


@dataclass(frozen=True)
class Run:
    """Which workflow run the lead lives in (its ids key the read model's rows)."""

    workflow_id: str
    run_id: str
    first_run_id: str
    """The first run of this chain of continue-as-new runs."""


class LeadBase:
    """The lead's state and the bookkeeping every decision shares."""

    def __init__(
        self,
        state: LeadState,
        *,
        run: Run,
        clock: Callable[[], datetime],
        log: Logger,
        inbox: list[LeadEvent | LeadProfile],
        effects: list[Effect],
        crm: Queue[CrmLeadUpsert | CrmNote],
        ledger: Queue[Fact],
    ) -> None:
        self.state = state
        self.run = run
        self.rules: Rules | None = None
        self.patches = Patches()  # until the run decides (a query before it sees no change)
        self.inbox = inbox
        """Profiles and events waiting to be applied, in arrival order."""
        self.effects = effects
        """Rep alerts, task closures and (runs from before the read model) transitions."""
        self.crm = crm
        """CRM writes: their own queue, so a CRM outage never holds back the rest."""
        self.ledger = ledger
        """Facts for the read model, written in order in batches."""
        self.events_this_run = 0
        self._clock = clock
        self.log = log
        """The worker's log: never the lead's data (name only what kind of thing happened)."""

    # --- time and rules ---------------------------------------------------------------------

    def now(self) -> datetime:
        return self._clock()

    def rules_now(self) -> Rules:
        if self.rules is None:
            raise RulesNotLoaded("rules not loaded yet")
        return self.rules

    def threshold(self) -> int:
        """The rules' sales-ready threshold (for handoffs from before each kept its own)."""
        return self.rules_now().scoring.sales_ready_threshold

    def read_rules(self) -> Step[None]:
        """Take the rules as they are now (they changed when the answer is not None)."""
        fresh: Rules | None = yield ReadRules(self.rules.version if self.rules else "")
        if fresh is not None:
            if self.rules is not None:
                self.state.note(self.now(), "rules", f"rules changed to {fresh.version}")
            self.rules = fresh
            self.state.rules_version = fresh.version
            self.set_fit()

    def set_fit(self) -> None:
        state, rules = self.state, self.rules
        if rules is None:
            return
        before = state.score.total
        state.score = scoring.with_fit(state.score, state.profile, rules.scoring)
        state.grade = scoring.grade(state.score, rules.scoring)
        if state.score.total != before:
            fit = ", ".join(f"{k} {v:+d}" for k, v in state.score.fit_matches.items())
            self.report(
                facts.score, "fit", state.score.total - before, fit or "no fit rule matches"
            )

    # --- score decay and suppression -------------------------------------------------------

    def next_decay_at(self) -> datetime | None:
        try:
            return scoring.next_decay_at(self.state.score, self.rules_now().scoring.decay)
        except OverflowError:  # an activity dated near 9999-12-31 (before events were capped)
            return None

    def apply_decay(self, now: datetime) -> None:
        state = self.state
        try:
            state.score, entries = scoring.apply_decay(
                state.score,
                self.rules_now().scoring.decay,
                now,
                keep_ticks=self.patches.decay_in_event_time,
            )
        except OverflowError:  # as in next_decay_at: no decay is due before year 10000
            return
        for entry in entries:
            state.note(now, "decay", f"{entry.points:+d} ({entry.detail})")
        if entries:
            self.report(
                facts.score,
                "decay",
                sum(e.points for e in entries),
                "; ".join(e.detail or "" for e in entries),
            )

    def refund_decay(self, active_at: datetime) -> None:
        """Give back decay charged for a time an event told late shows the lead active."""
        state = self.state
        policy = self.rules_now().scoring.decay
        state.score, entries = scoring.refund_decay(state.score, policy, active_at)
        for entry in entries:
            state.note(self.now(), "decay", f"{entry.points:+d} ({entry.detail})")
            self.report(facts.score, "decay", entry.points, entry.detail or "")

    def suppress_email(self, reason: str) -> None:
        state = self.state
        state.email_suppressed = reason
        state.note(self.now(), "suppressed", f"email suppressed after {reason}")
        if state.stage in ("nurturing", "recycled"):
            self.move("suppressed", by="system", reason=f"email {reason}")

    # --- stage changes ---------------------------------------------------------------------

    def move(self, to: Stage, by: str, reason: str) -> None:
        state = self.state
        previous = state.stage
        state.stage = to
        state.note(self.now(), "stage", f"{previous} -> {to} by {by}: {reason}")
        self.record(previous, to, by, reason)

    def record(self, from_stage: str, to: str, by: str, reason: str) -> None:
        state, now = self.state, self.now()
        state.transitions += 1
        if self.patches.ledger:
            self.report(facts.transition, from_stage, to, by, reason)
        else:  # runs from before the ledger write a transition row through an activity
            self.effects.append(
                TransitionRecord(
                    key=f"{state.lead_id}:t{state.transitions}",
                    lead_id=state.lead_id,
                    workflow_id=self.run.workflow_id,
                    at=now,
                    from_stage=from_stage,
                    to_stage=to,
                    by=by,
                    reason=reason,
                    score=state.score.total,
                    owner=state.owner,
                )
            )
        if from_stage != to:
            state.stage_entered_at = now

    def responded(self, rep: str, verb: str) -> None:
        """The rep's first accept, contact or reject on their turn stops its SLA clock."""
        turn = facts.current_assignment(self.state)
        if turn is None or turn.rep != rep or turn.responded_at is not None:
            return
        turn.responded_at, turn.response = self.now(), verb
        self.report(facts.assignment)

    # --- alerts and the CRM --------------------------------------------------------------

    def queue_rep_email(
        self,
        rep_id: str,
        category: EmailCategory,
        subject: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        state, rules = self.state, self.rules_now()
        rep = rules.routing.rep(rep_id)
        if rep is None:
            state.note(self.now(), "notify failed", f"rep {rep_id} is not in routing.yaml")
            return
        self.effects.append(
            EmailRequest(
                key=self.send_key(
                    idempotency.alert_key(state, category, rep_id, self.now()),
                    lambda n: f"notify:{state.lead_id}:{category}:{n}:{rep_id}",
                ),
                lead_id=state.lead_id,
                category=category,
                to_email=rep.email,
                to_name=rep.name,
                sender=rules.cadences.sender,
                template=f"notifications/{category}.html",  # one template per kind
                subject=subject,
                context=rep_alert_context(state, rep, extra),
            )
        )

    def send_key(self, derived: str, counted: Callable[[int], str]) -> str:
        """The idempotency key of a send: ``derived`` from what it is about, or in runs from
        before that (``keys-from-what-happened``) ``counted`` with the lead's next
        ``transitions`` number, as those runs always keyed them."""
        if self.patches.derived_keys:
            return derived
        self.state.transitions += 1
        return counted(self.state.transitions)

    def push_to_crm(self, status: str) -> None:
        """Queue the lead's CRM record update (only when routing.yaml enables the CRM)."""
        state, rules = self.state, self.rules_now()
        if not rules.routing.crm.enabled:
            return
        self.crm.put(
            CrmLeadUpsert(
                key=self.send_key(
                    idempotency.crm_push_key(state, status), lambda n: f"{state.lead_id}:crm:{n}"
                ),
                lead_id=state.lead_id,
                fields=crm.lead_fields(state, rules.routing, status),
            )
        )

    def forward_due(self) -> datetime:
        state = self.state
        every = self.rules_now().routing.forward_activity_every
        return (state.last_forward_at + every) if state.last_forward_at else self.now()

    def forward_activity(self) -> None:
        """Tell the owner (and the CRM) what the lead did since they last heard."""
        state = self.state
        if state.owner:
            self.queue_rep_email(
                state.owner,
                "activity",
                f"New activity from {state.profile.display_name}",
                extra={"activity": list(state.unforwarded)},
            )
        state.note(
            self.now(), "forwarded", f"{len(state.unforwarded)} new activities to {state.owner}"
        )
        if self.rules_now().routing.crm.enabled:
            self.crm.put(
                CrmNote(
                    key=self.send_key(
                        idempotency.crm_note_key(state, self.now()),
                        lambda n: f"{state.lead_id}:activity:{n}",
                    ),
                    lead_id=state.lead_id,
                    subject=f"Nurture: {len(state.unforwarded)} new activities",
                    description="\n".join(state.unforwarded),
                )
            )
        state.unforwarded = []
        state.last_forward_at = self.now()

    # --- the read model --------------------------------------------------------------------

    def report(
        self,
        build: Callable[Concatenate[LeadState, facts.Stamp, FactArgs], list[Fact]],
        *args: FactArgs.args,
        **kwargs: FactArgs.kwargs,
    ) -> None:
        """Queue for the read model the facts ``build`` makes of the lead as it is now. Runs
        from before the ledger report none, and build none (building numbers facts)."""
        if not self.patches.ledger:
            return
        stamp = facts.Stamp(self.now(), self.run.run_id, self.run.first_run_id)
        made = build(self.state, stamp, *args, **kwargs)
        if made:
            self.ledger.put(*made)

    def snapshot(self) -> LeadSnapshot:
        return facts.snapshot(self.state, self.run.workflow_id)

    # --- errors ----------------------------------------------------------------------------

    def failed(self, what: str, failure: Failed) -> None:
        """Record on the lead that ``what`` (an activity) failed for good."""
        self.state.last_error = f"{what} failed: {failure.message}"
        self.state.note(self.now(), "error", self.state.last_error)
        # The message may quote the lead's data (an address a provider refused): the log
        # names the failure's kind; the lead keeps the whole message (nurture show).
        self.log.warning("%s failed for lead %s: %s", what, self.state.lead_id, failure.kind)

    def bad_input(self, what: str, err: Exception) -> None:
        """Record on the lead that ``what`` could not be applied and was skipped."""
        state = self.state
        state.last_error = f"{what} skipped: {type(err).__name__}: {err}"
        state.note(self.now(), "error", state.last_error)
        # The error text may quote the lead's data: the log names only its kind.
        self.log.warning("%s skipped for lead %s: %s", what, state.lead_id, type(err).__name__)

    def undo_point(self) -> Callable[[], None]:
        """A way back to the lead as it is now, for a rep action that fails half-way (it runs
        no activity, so its state and the work it queued are all it changed)."""
        before = self.state.model_copy(deep=True)
        queues: list[list[Any]] = [self.inbox, self.effects, self.crm.items, self.ledger.items]
        lengths = [len(queue) for queue in queues]

        def undo() -> None:
            for name in type(before).model_fields:  # in place: the run loop holds the object
                setattr(self.state, name, getattr(before, name))
            for queue, length in zip(queues, lengths, strict=True):
                del queue[length:]

        return undo
