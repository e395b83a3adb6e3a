"""A lead in sales: the handoff with its story, the rep it goes to, the SLA clock and its
escalation ladder, and what reps do with the lead (accept, contact, reject, won or lost)."""

from __future__ import annotations

from typing import Any, Literal

from nurture.contract.messages import (
    ActionResult,
    Assignment,
    AssignRequest,
    Escalation,
    Handoff,
    Outcome,
    OutcomeRequest,
    Rejection,
    RejectRequest,
    RepAction,
)
from nurture.core import crm, facts
from nurture.core.commands import AssignRep, Failed, Step
from nurture.core.handoff import story_for
from nurture.core.nurturing import Nurturing
from nurture.domain import routing, scoring, sla
from nurture.domain.routing import RouteDecision
from nurture.domain.stages import RepAction as RepActionName
from nurture.domain.stages import rep_action_error


class Sales(Nurturing):
    """From the moment a lead is sales-ready until sales closes it or sends it back."""

    def hand_off(self, qualified_by: str) -> Step[None]:
        yield from self.read_rules()
        state, rules, now = self.state, self.rules_now(), self.now()
        decision = routing.route(state.profile, rules.routing)
        state.handoffs += 1
        story = story_for(state, qualified_by)
        state.handoff = Handoff(
            number=state.handoffs,
            at=now,
            route=decision,
            story=story,
            threshold=rules.scoring.sales_ready_threshold,
            touches_before=state.touches_sent,
        )
        if state.cadence is not None and state.cadence.waiting_task is not None:
            self.close_task(state.cadence.waiting_task, "cancelled", by="routing")
        self.drop_held("handed off to sales")
        state.cadence = None
        rep = yield from self.assign(decision.pool, decision, f"h{state.handoffs}")
        self.give_to(rep or decision.pool[0], f"handoff: {qualified_by}", "handoff")
        self.report(facts.handoff, self.threshold())

    def give_to(
        self,
        rep: str,
        reason: str,
        category: Literal["handoff", "reassigned"],
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Make ``rep`` the owner, start the SLA clock and queue the rep's alert."""
        state, rules, now = self.state, self.rules_now(), self.now()
        handoff = state.handoff
        assert handoff is not None
        state.owner = rep
        handoff.sla_due_at = sla.sla_due_at(now, rules.routing)
        state.assignments.append(
            Assignment(
                rep=rep, at=now, reason=reason, handoff=handoff.number, due_at=handoff.sla_due_at
            )
        )
        self.report(facts.assignment)
        self.move("assigned", by="routing", reason=reason)
        self.push_to_crm(crm.OPEN)
        self.queue_rep_email(
            rep,
            category,
            subject=f"New sales-ready lead: {state.profile.display_name}"
            if category == "handoff"
            else f"Lead reassigned to you: {state.profile.display_name}",
            extra=extra,
        )

    def assign(
        self,
        candidates: list[str],
        decision: RouteDecision,
        attempt: str,
        exclude: list[str] | None = None,
    ) -> Step[str | None]:
        """The rep routing's activity picks among ``candidates`` (None: nobody, or failed)."""
        state, rules = self.state, self.rules_now()
        request = AssignRequest(
            key=f"assign:{state.lead_id}:{attempt}",
            lead_id=state.lead_id,
            pool=decision.rule,
            candidates=candidates,
            strategy=decision.strategy,
            # Who is away or full is decided by the activity, with today's date and counts.
            reps=routing.rep_limits(rules.routing, candidates),
            fallback_owner=rules.routing.fallback_owner,
            exclude=exclude or [],
        )
        rep: str | Failed | None = yield AssignRep(request)
        if isinstance(rep, Failed):
            self.failed("assignment", rep)
            return None
        return rep

    # --- the SLA --------------------------------------------------------------------------

    def sla_missed(self) -> Step[None]:
        state, rules, now = self.state, self.rules_now(), self.now()
        handoff = state.handoff
        assert handoff is not None and state.owner is not None
        missed_by = state.owner
        handoff.missed_by.append(missed_by)
        miss_number = len(handoff.missed_by)
        notified = sla.escalation_recipients(missed_by, miss_number, rules.routing)
        handoff.sla_due_at = None
        new_owner: str | None = None
        if rules.routing.sla.reassign_on_miss:
            candidates = routing.candidates_after_miss(
                handoff.route, handoff.missed_by, rules.routing
            )
            # Never back to the owner or to anyone who already missed on this lead (the
            # activity's manager and fallback-owner choices included).
            excluded = list(dict.fromkeys([missed_by, *handoff.missed_by]))
            if candidates:
                new_owner = yield from self.assign(
                    candidates,
                    handoff.route,
                    f"h{handoff.number}-miss{miss_number}",
                    exclude=excluded if self.patches.sla_ladder else None,
                )
                if state.stage != "assigned" or state.owner != missed_by:
                    # The rep accepted or rejected while the next rep was being picked: the
                    # rep's action stands; the miss is still escalated.
                    new_owner = None
                if self.patches.sla_ladder and new_owner in excluded:
                    new_owner = None  # an older worker's answer: the owner keeps the lead
        turn = facts.current_assignment(state)
        if turn is not None and turn.rep == missed_by:
            turn.misses += 1
            turn.first_missed_at = turn.first_missed_at or now
            turn.escalated_to = [*turn.escalated_to, *notified]
            turn.reassigned_to = new_owner
            self.report(facts.assignment)
            self.report(facts.handoff, self.threshold())
        handoff.escalations.append(
            Escalation(
                at=now,
                missed_by=missed_by,
                miss_number=miss_number,
                notified=notified,
                reassigned_to=new_owner,
            )
        )
        state.note(
            now,
            "sla missed",
            f"{missed_by} missed the SLA (miss {miss_number}); "
            f"escalated to {', '.join(notified)}"
            + (f"; reassigned to {new_owner}" if new_owner else ""),
        )
        for recipient in notified:
            self.queue_rep_email(
                recipient,
                "escalation",
                f"SLA missed on {state.profile.display_name} by {missed_by}",
                extra={
                    "missed_by": missed_by,
                    "miss_number": miss_number,
                    "reassigned_to": new_owner,
                },
            )
        if new_owner is not None:
            self.give_to(
                new_owner,
                f"reassigned after SLA miss by {missed_by}",
                "reassigned",
                extra={"missed_by": missed_by, "miss_number": miss_number},
            )
        elif state.stage == "assigned":
            # Nobody left to take it: keep the owner and chase again after another period,
            # or once a day when the whole escalation ladder already knows.
            handoff.sla_due_at = (
                sla.next_chase_at(now, miss_number, rules.routing)
                if self.patches.sla_ladder
                else sla.sla_due_at(now, rules.routing)
            )
            self.record("assigned", "assigned", by="sla", reason=f"SLA missed by {missed_by}")

    # --- what reps do ---------------------------------------------------------------------

    def rep_action_error(self, action: RepActionName, rep: str) -> str | None:
        """Why ``rep`` may not ``action`` the lead now, or None."""
        known = self.rules is not None and self.rules.routing.rep(rep) is not None
        return rep_action_error(action, self.state.stage, self.state.owner, rep, known)

    def contacted(self, action: RepAction, verb: Literal["accepted", "contacted"]) -> None:
        state, now = self.state, self.now()
        if state.handoff and state.handoff.contacted_at is None:
            state.handoff.contacted_at = now
            state.handoff.sla_due_at = None
        self.responded(action.rep, verb)
        if state.stage == "assigned":
            self.move("working", by=action.rep, reason=verb)
            self.report(facts.handoff, self.threshold())
            if not action.from_crm:
                self.push_to_crm(crm.WORKING)
        else:
            state.note(now, verb, f"{action.rep} {verb} the lead")

    def reject(self, request: RejectRequest) -> None:
        """Sales sends the lead back: it is recycled into the recycle cadence."""
        state, rules, now = self.state, self.rules_now(), self.now()
        state.rejections.append(Rejection(at=now, rep=request.rep, reason=request.reason))
        self.responded(request.rep, "rejected")
        if not request.from_crm:
            self.push_to_crm(crm.NOT_CONVERTED)
        if rules.scoring.reset_behaviour_on_recycle:
            before = state.score.total
            state.score, _ = scoring.reset_behaviour(state.score, now, f"rejected by {request.rep}")
            self.report(
                facts.score,
                "reset",
                state.score.total - before,
                f"behaviour reset: rejected by {request.rep}",
            )
        state.owner = None
        state.unforwarded = []
        self.move("recycled", by=request.rep, reason=f"rejected: {request.reason}")
        self.report(facts.handoff, self.threshold())
        self.enrol(rules.cadences.recycle_cadence, f"rejected by {request.rep}: {request.reason}")
        if state.email_suppressed:
            self.move("suppressed", by="system", reason="email suppressed")

    def close(self, request: OutcomeRequest) -> None:
        """Won or lost: the sales loop closes (the lead stays, keeping the customer's record)."""
        state, now = self.state, self.now()
        state.outcome = Outcome(
            result=request.result, amount=request.amount, at=now, rep=request.rep
        )
        amount = f" ({request.amount:g})" if request.amount is not None else ""
        self.move(request.result, by=request.rep, reason=f"{request.result}{amount}")
        self.report(facts.outcome, state.outcome, self.threshold())
        if not request.from_crm:
            self.push_to_crm(crm.CONVERTED if request.result == "won" else crm.NOT_CONVERTED)

    def result(self) -> ActionResult:
        return ActionResult(
            lead_id=self.state.lead_id, stage=self.state.stage, owner=self.state.owner
        )
