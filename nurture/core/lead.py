"""The life of one lead, decided without Temporal: what each profile update, behaviour event,
due timer and rep action does to the lead, and what it asks of the world.

The workflow (``workflows/lead.py``) is the shell around this core. It hands the core its
clock, the queues it watches and the patches its run has, applies each item through
:meth:`LeadCore.apply`, runs :meth:`LeadCore.timers_due` when :meth:`LeadCore.next_wakeup`
comes, and calls the rep actions from its updates. Steps are generators: where a decision needs
an answer (the rules, an email's result, a rep, a task number) the step yields the ask
(``nurture/core/commands.py``) and the workflow sends the answer back, so the commands come in
exactly the order the decisions ask for them. A unit test drives a step the same way with
answers of its own (``tests/lead_driver.py``).

The parts, each building on the one before: :class:`~nurture.core.base.LeadBase` (state,
clock, bookkeeping), :class:`~nurture.core.consent.Consent` (consent records, topics the
person left), :class:`~nurture.core.nurturing.Nurturing` (cadences, touches, tasks),
:class:`~nurture.core.sales.Sales` (handoff, SLA, rep actions), and this module (what comes
in, what is due).
"""

from __future__ import annotations

from datetime import UTC, datetime

from nurture.contract.messages import SEEN_EVENT_IDS_KEPT, LeadInput
from nurture.core import facts
from nurture.core.base import UNFORWARDED_KEPT
from nurture.core.commands import Step
from nurture.core.enrolment import may_resegment
from nurture.core.sales import Sales
from nurture.domain import cadence, scoring
from nurture.domain.leads import LeadEvent, LeadProfile, dedupe_marker
from nurture.domain.rules import SYSTEM_EVENT_TYPES
from nurture.domain.stages import MARKETING_STAGES, SALES_STAGES

SUPPRESSING_EVENTS = frozenset(SYSTEM_EVENT_TYPES)


def event_time(at: datetime | None, received: datetime) -> datetime:
    """When an event counts as having happened: its own time in UTC, but never later than when
    the lead received it (a browser clock ahead, or 9999-12-31, must not push the lead's decay
    clock past the end of the calendar) and ``received`` when its time has no UTC equivalent
    (9999-12-31T23:59:59-14:00)."""
    if at is None:
        return received
    try:
        utc = at.astimezone(UTC)
    except OverflowError:
        return received
    return min(utc, received)


def _where_and_when(event: LeadEvent) -> str:
    """`` https://…/pricing``, and for a visit made before the person was known (handed over
    by the website tracker on identification) when it was made."""
    where = f" {event.url}" if event.url else ""
    if event.props.get("anonymous") is True and event.at is not None:
        return f"{where} (anonymous visit, {event.at:%Y-%m-%d %H:%M} UTC)"
    return where


def described(item: LeadEvent | LeadProfile) -> str:
    """What an item is, for the note saying it could not be applied (no personal data)."""
    if isinstance(item, LeadProfile):
        return "profile update"
    return f"event {item.type}" + (f" ({item.event_id})" if item.event_id else "")


class LeadCore(Sales):
    """One lead: the whole of its decisions (see the module's docstring)."""

    def begin_run(self, new: bool, suppressed: str | None = None) -> None:
        """The run has its rules: a new lead is created (suppressed at once when its address
        was on the suppression list, ``suppressed`` saying why); a lead from before the read
        model reports what it already is."""
        state = self.state
        if new:
            state.created_at = state.stage_entered_at = self.now()
            state.note(self.now(), "created", "lead workflow started")
            self.set_fit()
            if suppressed:
                self.suppress_email(f"suppression list: {suppressed}")
        elif self.patches.ledger and state.ledger_flushes == 0:
            self.report(facts.backfill, self.threshold())

    def enrol_if_idle(self) -> None:
        """A lead in marketing without a cadence gets the one its profile selects."""
        state = self.state
        if state.cadence is None and state.stage in MARKETING_STAGES:
            self.enrol(cadence.select_cadence(state.profile, self.rules_now().cadences), "new lead")

    def continued(self) -> LeadInput:
        """The next run's input: the lead and every piece of work not done yet."""
        state = self.state
        state.runs += 1
        return LeadInput(
            lead_id=state.lead_id,
            state=state,
            pending=self.inbox,
            # An in-flight CRM write is simply done again: it is an upsert.
            pending_effects=[*self.effects, *self.crm.items],
            # A batch being written is written again: its rows are idempotent.
            pending_facts=self.ledger.items,
        )

    # --- what comes in --------------------------------------------------------------------

    def apply(self, item: LeadEvent | LeadProfile) -> Step[None]:
        if isinstance(item, LeadProfile):
            yield from self.apply_profile(item)
        else:
            yield from self.apply_event(item)

    def apply_profile(self, update: LeadProfile) -> Step[None]:
        state, rules = self.state, self.rules_now()
        state.profile = state.profile.merged(update)
        self.set_fit()
        state.note(self.now(), "profile", "profile updated")
        if update.consent is not None:
            self.record_consent(update.consent)
        progress = state.cadence
        if progress is not None and may_resegment(state):
            better = cadence.select_cadence(state.profile, rules.cadences)
            if better.id != progress.cadence_id:
                state.enrolments -= 1
                self.enrol(better, "segment from profile")
        if state.stage in MARKETING_STAGES and scoring.is_sales_ready(state.score, rules.scoring):
            yield from self.hand_off(
                f"score {state.score.total} reached threshold "
                f"{rules.scoring.sales_ready_threshold} on profile fit"
            )

    def apply_event(self, event: LeadEvent) -> Step[None]:
        state, rules, now = self.state, self.rules_now(), self.now()
        if event.event_id:
            marker = dedupe_marker(event.event_id)
            if marker in state.seen_event_markers:
                state.duplicates_ignored += 1
                return
            state.seen_event_markers.append(marker)
            del state.seen_event_markers[:-SEEN_EVENT_IDS_KEPT]
        state.events_applied += 1
        self.events_this_run += 1
        if self.patches.visible_updates:
            event = event.model_copy(update={"at": event_time(event.at, now)})
        if event.campaign and not state.profile.campaign:
            state.profile = state.profile.model_copy(update={"campaign": event.campaign})
        if event.type in SUPPRESSING_EVENTS:
            self.report(facts.event, event, [])
            self.suppress_email(event.type)
            return
        if self.patches.decay_in_event_time and event.at is not None and event.at < now:
            # Told late: decay as it would have been charged had the event come live.
            self.refund_decay(event.at)
            self.apply_decay(event.at)
        state.score, entries = scoring.score_event(state.score, event, rules.scoring, now)
        summary = ", ".join(f"{e.rule} {e.points:+d}" for e in entries)
        self.report(facts.event, event, entries)
        state.note(now, "event", f"{event.type}{_where_and_when(event)}: {summary}")
        if state.stage in SALES_STAGES:
            state.unforwarded.append(
                f"{(event.at or now):%Y-%m-%d %H:%M} {event.type}"
                f"{' ' + event.url if event.url else ''}"
            )
            del state.unforwarded[:-UNFORWARDED_KEPT]
            return
        if state.stage in MARKETING_STAGES:
            if scoring.qualifies_instantly(event, rules.scoring):
                yield from self.hand_off(f"instant: {event.type}")
            elif scoring.is_sales_ready(state.score, rules.scoring):
                yield from self.hand_off(
                    f"score {state.score.total} reached threshold "
                    f"{rules.scoring.sales_ready_threshold} on {event.type}"
                )

    # --- what is due ----------------------------------------------------------------------

    def timers_due(self) -> Step[None]:
        """Do what is due now: decay, an SLA miss, the next touch, the activity digest."""
        state, now = self.state, self.now()
        self.apply_decay(now)
        sla_due = state.handoff.sla_due_at if state.stage == "assigned" and state.handoff else None
        if sla_due is not None and sla_due <= now:
            yield from self.sla_missed()
        touch_due = (
            state.cadence.due_at if state.stage in MARKETING_STAGES and state.cadence else None
        )
        if touch_due is not None and touch_due <= now:
            yield from self.send_due_touch()
        if state.stage in SALES_STAGES and state.unforwarded and self.forward_due() <= now:
            self.forward_activity()

    def next_wakeup(self) -> datetime | None:
        """When something is next due (None: nothing until a signal or update comes)."""
        state = self.state
        candidates: list[datetime | None] = [self.next_decay_at()]
        if state.stage == "assigned" and state.handoff:
            candidates.append(state.handoff.sla_due_at)
        if state.stage in MARKETING_STAGES and state.cadence:
            candidates.append(state.cadence.due_at)
        if state.stage in SALES_STAGES and state.unforwarded:
            candidates.append(self.forward_due())
        present = [c for c in candidates if c is not None]
        return min(present) if present else None
