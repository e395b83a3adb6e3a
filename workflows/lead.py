"""The life of one lead, as one long-lived Temporal workflow.

Read top to bottom: a lead is created by its first profile or event; behaviour signals move its
score; while in marketing it follows a cadence on durable timers (emails held for the send
window in the lead's zone and the frequency cap; call/voicemail/direct-mail steps wait on a task
in the inside-sales queue until its outcome or its due time); the moment it is sales-ready it
is handed to the rep routing picks, with its story; the SLA clock then runs until the rep makes
contact, escalating and reassigning on a miss; a reject sends it to the recycle cadence; won/lost
close the sales loop (the workflow stays, keeping the customer's record and absorbing activity).

Every decision is a plain function from ``nurture.*``; every side effect is an activity with a
retry policy and an idempotency key. Rules (scoring, cadences, routing) are re-read through an
activity at defined points only: at the start of each run, before each touch, and at each
handoff, so a marketer's change never applies half-way through a step.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from nurture.contract.ledger import (
        FACTS_PER_BATCH,
        HELD_SUFFIX,
        RECORD_FACTS,
        Fact,
        LeadSnapshot,
    )
    from nurture.contract.messages import (
        ASSIGN_REP,
        CLOSE_TASK,
        CREATE_TASK,
        CRM_ADD_TASK,
        CRM_UPSERT_LEAD,
        LOAD_RULES,
        MARKETING_SENDS_KEPT,
        RECORD_TRANSITION,
        SEEN_EVENT_IDS_KEPT,
        SEND_EMAIL,
        TASKS_KEPT,
        ActionResult,
        Assignment,
        AssignRequest,
        CrmLeadUpsert,
        CrmNote,
        Effect,
        EmailCategory,
        EmailRequest,
        EmailResult,
        Escalation,
        Handoff,
        HeldTouch,
        LeadInput,
        LeadState,
        LoadRulesRequest,
        Outcome,
        OutcomeRequest,
        Rejection,
        RejectRequest,
        RepAction,
        TaskClosure,
        TaskCompletion,
        TaskRef,
        TaskRequest,
        TransitionRecord,
    )
    from nurture.contract.names import (
        EVENT_SIGNAL,
        LEAD_WORKFLOW,
        PROFILE_SIGNAL,
        SEARCH_ATTRIBUTES,
        STATE_QUERY,
    )
    from nurture.core import crm, facts, visibility
    from nurture.core.context import rep_alert_context, step_context
    from nurture.core.enrolment import may_resegment
    from nurture.core.handoff import story_for
    from nurture.domain import cadence, routing, scoring, send_window, sla
    from nurture.domain.leads import LeadEvent, LeadProfile, dedupe_marker
    from nurture.domain.routing import RouteDecision
    from nurture.domain.rules import SYSTEM_EVENT_TYPES, Cadence, CadenceStep, Rules
    from nurture.domain.stages import (
        MARKETING_STAGES,
        SALES_STAGES,
        Stage,
        rep_action_error,
        unknown_rep_error,
    )
    from nurture.domain.stages import (
        RepAction as RepActionName,
    )
    from nurture.domain.tasks import missing_contact, outcome_error, outcome_event_type
    from workflows.patches import Patches
    from workflows.pumps import Pump

RETRY_FOREVER = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=["TemplateError", "SendGridRejected", "ConfigError", "CrmRejected"],
)
SUPPRESSING_EVENTS = frozenset(SYSTEM_EVENT_TYPES)
HELD_TOUCH_RECHECK = timedelta(hours=1)  # a held touch looks at the rules this often
CRM_KINDS = frozenset({"crm_lead", "crm_task"})
UNFORWARDED_KEPT = 100  # a digest lists the latest activity; the score counts all of it
FACTS_CARRIED_MAX = 1000  # ~300 bytes each: well inside a run's input

CONTROL_FLOW_ERRORS = (
    workflow.NondeterminismError,  # also RestrictedWorkflowAccessError: a bug to see, not skip
    workflow.ReadOnlyContextError,
    CancelledError,
)
"""Temporal's own errors: never swallowed as a bad input (asyncio's cancellation and
continue-as-new are BaseExceptions and pass anyway)."""

RepRequest = TypeVar("RepRequest", bound=RepAction)
FactArgs = ParamSpec("FactArgs")


def rep_action(
    handler: Callable[[LeadWorkflow, RepRequest], ActionResult],
) -> Callable[[LeadWorkflow, RepRequest], ActionResult]:
    """Every rep action (an update) goes through here, so none can forget that what it changed
    must be visible at once (search attributes, read model) and that one bad action must not
    fail the workflow task: the failure is recorded on the lead and refused to the caller."""

    @functools.wraps(handler)
    def applied(self: LeadWorkflow, request: RepRequest) -> ActionResult:
        undo = self._undo_point()
        try:
            return handler(self, request)
        except (*CONTROL_FLOW_ERRORS, ApplicationError):  # ApplicationError: a refusal
            raise
        except Exception as err:
            undo()  # all or nothing: the action changed nothing
            what = f"{handler.__name__} by {request.rep}"
            self._bad_input(what, err)
            raise ApplicationError(
                f"lead {self._state.lead_id}: {what} could not be applied: {err}",
                type="LeadActionFailed",
                non_retryable=True,
            ) from None
        finally:
            if self._patches.visible_updates:
                self._publish()

    return applied


def unrenderable(err: ActivityError) -> str | None:
    """Why the email could not be rendered, when that is why the send failed (a template
    error is the marketer's to fix, not the lead's: the touch waits for the fix)."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type == "TemplateError":
        return cause.message
    return None


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


@workflow.defn(name=LEAD_WORKFLOW)
class LeadWorkflow:
    @workflow.init
    def __init__(self, inp: LeadInput) -> None:
        self._state = inp.state or LeadState(
            lead_id=inp.lead_id, profile=LeadProfile(lead_id=inp.lead_id)
        )
        self._inbox: list[LeadEvent | LeadProfile] = list(inp.pending)
        # CRM writes have their own queue: a CRM outage must never hold back the rep's alert,
        # the SLA clock or anything else the lead does. Within it, order is kept.
        self._effects: list[Effect] = [e for e in inp.pending_effects if e.kind not in CRM_KINDS]
        self._crm: Pump[CrmLeadUpsert | CrmNote] = Pump(
            [e for e in inp.pending_effects if isinstance(e, CrmLeadUpsert | CrmNote)],
            self._write_to_crm,
        )
        # Facts for the read model, written in order by their own pump (a local activity per
        # batch: nothing in the history but its marker, and the lead never waits on it).
        self._ledger: Pump[Fact] = Pump(
            inp.pending_facts, self._write_facts, more=lambda: self._snapshot() != self._reported
        )
        self._reported: LeadSnapshot | None = None
        self._patches = Patches()  # until the run decides (a query before it sees no change)
        self._wake_timer: asyncio.Task[None] | None = None
        self._wake_timer_at: datetime | None = None
        self._rules: Rules | None = None
        self._published: dict[str, visibility.SearchValue] = {}
        self._events_this_run = 0
        self._held_clock: tuple[asyncio.Task[Any] | None, datetime] | None = None

    # --- the life of a lead ------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: LeadInput) -> None:
        state = self._state
        self._patches = Patches.decide()  # first thing in the run: see workflows/patches.py
        await self._refresh_rules()
        self._crm.start()
        if inp.state is None:
            state.created_at = state.stage_entered_at = self._now()
            state.note(self._now(), "created", "lead workflow started")
            self._set_fit()
        elif self._patches.ledger and state.ledger_flushes == 0:
            self._report(facts.backfill, self._threshold())
        while True:
            await self._drain()
            if state.cadence is None and state.stage in MARKETING_STAGES:
                self._enrol(
                    cadence.select_cadence(state.profile, self._rules_now().cadences), "new lead"
                )
            if self._should_continue_as_new():
                await workflow.wait_condition(workflow.all_handlers_finished)
                # Facts not yet written travel in the next run's input: keep that small (a
                # database outage holds the lead here until the backlog is written).
                await workflow.wait_condition(lambda: len(self._ledger.items) <= FACTS_CARRIED_MAX)
                await self._drain()
                state.runs += 1
                workflow.continue_as_new(
                    LeadInput(
                        lead_id=state.lead_id,
                        state=state,
                        pending=self._inbox,
                        # An in-flight CRM write is simply done again: it is an upsert.
                        pending_effects=[*self._effects, *self._crm.items],
                        # A batch being written is written again: its rows are idempotent.
                        pending_facts=self._ledger.items,
                    )
                )
            wake_at = self._next_wakeup()
            if wake_at is None or wake_at > self._now():
                if self._patches.steady_timer:
                    await self._wait_for_work(wake_at)
                else:
                    timeout = None if wake_at is None else wake_at - self._now()
                    with contextlib.suppress(TimeoutError):  # a timer came due: fine
                        await workflow.wait_condition(
                            lambda: bool(self._inbox or self._effects), timeout=timeout
                        )
            await self._run_due_timers()

    async def _wait_for_work(self, wake_at: datetime | None) -> None:
        """Until a signal or update queues work, or the timer fires. The timer armed by an
        earlier wait is kept while it fires no later than ``wake_at`` (or nothing is due at
        all): most events move nothing earlier, so they cost no timer commands."""
        timer, armed_for = self._wake_timer, self._wake_timer_at
        too_late = wake_at is not None and armed_for is not None and armed_for > wake_at
        if timer is not None and (timer.done() or too_late):
            timer.cancel()
            timer = None
        if timer is None and wake_at is not None:
            timer = asyncio.create_task(workflow.sleep(wake_at - self._now()))
            self._wake_timer_at = wake_at
        self._wake_timer = timer
        await workflow.wait_condition(
            lambda: bool(self._inbox or self._effects) or (timer is not None and timer.done())
        )

    async def _drain(self) -> None:
        """Apply queued profiles/events and carry out queued side effects, in order."""
        while (self._inbox or self._effects) and not self._should_continue_as_new():
            if self._inbox:
                await self._apply(self._inbox.pop(0))
            else:
                await self._carry_out(self._effects.pop(0))
        self._publish()

    async def _apply(self, item: LeadEvent | LeadProfile) -> None:
        """Apply one profile or event; one that cannot be applied is recorded and skipped, so
        it never fails the workflow task (which would be retried, and fail, forever)."""
        try:
            if isinstance(item, LeadProfile):
                await self._apply_profile(item)
            else:
                await self._apply_event(item)
        except CONTROL_FLOW_ERRORS:
            raise
        except Exception as err:
            what = (
                "profile update"
                if isinstance(item, LeadProfile)
                else f"event {item.type}" + (f" ({item.event_id})" if item.event_id else "")
            )
            self._bad_input(what, err)

    def _undo_point(self) -> Callable[[], None]:
        """A way back to the lead as it is now, for a rep action that fails half-way (it runs
        no activity, so its state and the work it queued are all it changed)."""
        before = self._state.model_copy(deep=True)
        queues: list[list[Any]] = [self._inbox, self._effects, self._crm.items, self._ledger.items]
        lengths = [len(queue) for queue in queues]

        def undo() -> None:
            for name in type(before).model_fields:  # in place: the run loop holds the object
                setattr(self._state, name, getattr(before, name))
            for queue, length in zip(queues, lengths, strict=True):
                del queue[length:]

        return undo

    def _bad_input(self, what: str, err: Exception) -> None:
        """Record on the lead that ``what`` could not be applied and was skipped."""
        state = self._state
        state.last_error = f"{what} skipped: {type(err).__name__}: {err}"
        state.note(self._now(), "error", state.last_error)
        # The error text may quote the lead's data: the log names only its kind.
        workflow.logger.warning(
            "%s skipped for lead %s: %s", what, state.lead_id, type(err).__name__
        )

    async def _run_due_timers(self) -> None:
        state, now = self._state, self._now()
        self._apply_decay(now)
        sla_due = state.handoff.sla_due_at if state.stage == "assigned" and state.handoff else None
        if sla_due is not None and sla_due <= now:
            await self._sla_missed()
        touch_due = (
            state.cadence.due_at if state.stage in MARKETING_STAGES and state.cadence else None
        )
        if touch_due is not None and touch_due <= now:
            await self._send_due_touch()
        if state.stage in SALES_STAGES and state.unforwarded and self._forward_due() <= now:
            self._forward_activity()
        self._publish()

    def _next_wakeup(self) -> datetime | None:
        state = self._state
        candidates: list[datetime | None] = [self._next_decay_at()]
        if state.stage == "assigned" and state.handoff:
            candidates.append(state.handoff.sla_due_at)
        if state.stage in MARKETING_STAGES and state.cadence:
            candidates.append(state.cadence.due_at)
        if state.stage in SALES_STAGES and state.unforwarded:
            candidates.append(self._forward_due())
        present = [c for c in candidates if c is not None]
        return min(present) if present else None

    # --- signals: behaviour and profile ---------------------------------------------------

    @workflow.signal(name=PROFILE_SIGNAL)
    def profile(self, profile: LeadProfile) -> None:
        self._inbox.append(profile)

    @workflow.signal(name=EVENT_SIGNAL)
    def event(self, event: LeadEvent) -> None:
        self._inbox.append(event)

    async def _apply_profile(self, update: LeadProfile) -> None:
        state, rules = self._state, self._rules_now()
        state.profile = state.profile.merged(update)
        self._set_fit()
        state.note(self._now(), "profile", "profile updated")
        progress = state.cadence
        if progress is not None and may_resegment(state):
            better = cadence.select_cadence(state.profile, rules.cadences)
            if better.id != progress.cadence_id:
                state.enrolments -= 1
                self._enrol(better, "segment from profile")
        if state.stage in MARKETING_STAGES and scoring.is_sales_ready(state.score, rules.scoring):
            await self._hand_off(
                f"score {state.score.total} reached threshold "
                f"{rules.scoring.sales_ready_threshold} on profile fit"
            )

    async def _apply_event(self, event: LeadEvent) -> None:
        state, rules, now = self._state, self._rules_now(), self._now()
        if event.event_id:
            marker = dedupe_marker(event.event_id)
            if marker in state.seen_event_markers:
                state.duplicates_ignored += 1
                return
            state.seen_event_markers.append(marker)
            del state.seen_event_markers[:-SEEN_EVENT_IDS_KEPT]
        state.events_applied += 1
        self._events_this_run += 1
        if self._patches.visible_updates:
            event = event.model_copy(update={"at": event_time(event.at, now)})
        if event.campaign and not state.profile.campaign:
            state.profile = state.profile.model_copy(update={"campaign": event.campaign})
        if event.type in SUPPRESSING_EVENTS:
            self._report(facts.event, event, [])
            self._suppress_email(event.type)
            return
        state.score, entries = scoring.score_event(state.score, event, rules.scoring, now)
        summary = ", ".join(f"{e.rule} {e.points:+d}" for e in entries)
        self._report(facts.event, event, entries)
        state.note(now, "event", f"{event.type}{' ' + event.url if event.url else ''}: {summary}")
        if state.stage in SALES_STAGES:
            state.unforwarded.append(
                f"{(event.at or now):%Y-%m-%d %H:%M} {event.type}"
                f"{' ' + event.url if event.url else ''}"
            )
            del state.unforwarded[:-UNFORWARDED_KEPT]
            return
        if state.stage in MARKETING_STAGES:
            if scoring.qualifies_instantly(event, rules.scoring):
                await self._hand_off(f"instant: {event.type}")
            elif scoring.is_sales_ready(state.score, rules.scoring):
                await self._hand_off(
                    f"score {state.score.total} reached threshold "
                    f"{rules.scoring.sales_ready_threshold} on {event.type}"
                )

    def _suppress_email(self, reason: str) -> None:
        state = self._state
        state.email_suppressed = reason
        state.note(self._now(), "suppressed", f"email suppressed after {reason}")
        if state.stage in ("nurturing", "recycled"):
            self._move("suppressed", by="system", reason=f"email {reason}")

    def _next_decay_at(self) -> datetime | None:
        try:
            return scoring.next_decay_at(self._state.score, self._rules_now().scoring.decay)
        except OverflowError:  # an activity dated near 9999-12-31 (before events were capped)
            return None

    def _apply_decay(self, now: datetime) -> None:
        state = self._state
        try:
            state.score, entries = scoring.apply_decay(
                state.score, self._rules_now().scoring.decay, now
            )
        except OverflowError:  # as in _next_decay_at: no decay is due before year 10000
            return
        for entry in entries:
            state.note(now, "decay", f"{entry.points:+d} ({entry.detail})")
        if entries:
            self._report(
                facts.score,
                "decay",
                sum(e.points for e in entries),
                "; ".join(e.detail or "" for e in entries),
            )

    # --- nurture ----------------------------------------------------------------------------

    def _enrol(self, chosen: Cadence, reason: str) -> None:
        state = self._state
        self._drop_held(f"enrolled in {chosen.id}")
        state.enrolments += 1
        state.cadence = cadence.enrol(chosen, state.enrolments, self._now())
        if not chosen.recycle:
            state.segment = chosen.id
        state.note(self._now(), "cadence", f"enrolled in {chosen.id} ({reason})")

    async def _send_due_touch(self) -> None:
        await self._refresh_rules()
        state, rules, now = self._state, self._rules_now(), self._now()
        progress = state.cadence
        if progress is None or progress.due_at is None or progress.due_at > now:
            return  # a task outcome moved the cadence on while the rules were being read
        book = rules.cadences
        current = book.get(progress.cadence_id)
        if progress.waiting_task is not None:
            # The step's task was not done in time: the cadence moves on without it.
            self._close_task(progress.waiting_task, "expired", by="system")
            progress = state.cadence = progress.model_copy(update={"waiting_task": None})
            if current is not None:
                self._advance(progress, current)
                return
        if current is None:
            state.note(now, "cadence", f"cadence {progress.cadence_id} no longer exists")
            fallback = (
                book.recycle_cadence
                if state.stage == "recycled"
                else (cadence.select_cadence(state.profile, book))
            )
            self._enrol(fallback, "previous cadence removed from config")
            return
        step = cadence.current_step(progress, current)
        if step is None:
            state.cadence = cadence.advance(progress, current, now)
            return
        label = f"{current.id}/{step.name} (cycle {progress.cycle})"
        if step.channel != "email":
            await self._start_task(current, progress, step, label)
            return
        key = cadence.touch_key(state.lead_id, progress, step)
        if state.email_suppressed or not state.profile.email:
            if state.held_touch is not None and state.held_touch.key == key:
                state.held_touch = None  # skipped with its reason below: no longer waiting
            state.touches_skipped += 1
            why = (
                f"email suppressed ({state.email_suppressed})"
                if state.email_suppressed
                else ("no email address on file")
            )
            state.note(now, "touch skipped", f"{label}: {why}")
            self._report(facts.touch, progress, current.id, step, "skipped", why)
        else:
            if self._patches.windows and self._deferred(progress, current, label):
                return
            if self._still_held(key, progress):
                return
            assert step.template is not None and step.subject is not None
            request = EmailRequest(
                key=key,
                lead_id=state.lead_id,
                category="touch",
                to_email=state.profile.email,
                to_name=state.profile.display_name,
                sender=book.sender,
                template=step.template,
                subject=step.subject,
                context=step_context(state, current.id, progress.cycle, step.name),
            )
            try:
                result: EmailResult | None = await self._send_now(request)
            except ActivityError as err:
                reason = unrenderable(err) if self._patches.sla_ladder else None
                if reason is not None and state.cadence is progress:
                    self._hold(progress, current, step, label, reason)
                    return
                self._failed(f"{request.category} email", err)
                result = None
            if state.held_touch is not None and state.held_touch.key == key:
                state.held_touch = None  # its outcome is reported below
                state.note(now, "touch released", f"{label}: tried again after a rules change")
            if result is None:
                self._report(facts.touch, progress, current.id, step, "failed", state.last_error)
            elif result.status == "suppressed":
                state.touches_skipped += 1
                state.note(now, "touch skipped", f"{label}: {result.detail}")
                self._report(facts.touch, progress, current.id, step, "suppressed", result.detail)
                self._suppress_email(f"suppression list: {result.detail}")
            else:
                state.touches_sent += 1
                state.marketing_sends.append(now)
                del state.marketing_sends[:-MARKETING_SENDS_KEPT]
                state.note(now, "touch", f"sent {label}")
                self._report(facts.touch, progress, current.id, step, "sent", None)
        if state.cadence is progress:  # a handoff during the send replaced the cadence
            self._advance(progress, current)

    def _hold(
        self,
        progress: cadence.CadenceProgress,
        current: Cadence,
        step: CadenceStep,
        label: str,
        reason: str,
    ) -> None:
        """Keep the touch in its place: its email cannot be rendered (a marketer's template
        error). Checked again hourly; sent once the rules (and with them the templates)
        change. Never skipped unseen: it is on the lead, in the read model and in the audit."""
        state, now = self._state, self._now()
        key = cadence.touch_key(state.lead_id, progress, step)
        earlier = state.held_touch if state.held_touch and state.held_touch.key == key else None
        state.held_touch = HeldTouch(
            key=key,
            cadence=current.id,
            step=step.name,
            cycle=progress.cycle,
            label=label,
            reason=reason,
            since=earlier.since if earlier else now,
            rules_version=self._rules_now().version,
        )
        state.cadence = progress.model_copy(update={"due_at": now + HELD_TOUCH_RECHECK})
        state.last_error = f"touch {label} held: {reason}"
        state.note(now, "touch held", f"{label}: {reason} (sent once the rules change)")
        workflow.logger.warning("touch held for lead %s: template error", state.lead_id)
        if earlier is None:
            self._report(
                facts.touch, progress, current.id, step, "held", reason, suffix=HELD_SUFFIX
            )

    def _still_held(self, key: str, progress: cadence.CadenceProgress) -> bool:
        """Whether the held touch ``key`` stays held: nothing changed that could fix it."""
        state, held = self._state, self._state.held_touch
        if held is None or held.key != key or held.rules_version != self._rules_now().version:
            return False
        held.checks += 1
        state.cadence = progress.model_copy(update={"due_at": self._now() + HELD_TOUCH_RECHECK})
        return True

    def _drop_held(self, why: str) -> None:
        """The cadence the held touch belongs to ends (a handoff, a new cadence): the touch
        is skipped, with its reason, rather than left waiting for ever."""
        state, held = self._state, self._state.held_touch
        if held is None:
            return
        state.held_touch = None
        state.touches_skipped += 1
        state.note(self._now(), "touch skipped", f"{held.label}: held touch dropped ({why})")
        self._report(facts.held_touch_dropped, held, why)

    def _advance(self, progress: cadence.CadenceProgress, current: Cadence) -> None:
        state = self._state
        state.cadence = cadence.advance(progress, current, self._now())
        if state.cadence.parked:
            state.note(self._now(), "cadence", f"{current.id} finished: parked")

    def _deferred(self, progress: cadence.CadenceProgress, current: Cadence, label: str) -> bool:
        """Hold the touch until the send window is open in the lead's time zone and the
        frequency cap allows another email; the step keeps its place, nothing is dropped."""
        state, book, now = self._state, self._rules_now().cadences, self._now()
        zone, zone_note = send_window.resolve_zone(state.profile.timezone, book.default_timezone)
        decision = send_window.next_send_time(
            now, book.window_for(current), zone, state.marketing_sends, book.frequency_cap
        )
        if decision.at <= now:
            return False
        state.cadence = progress.model_copy(update={"due_at": decision.at})
        state.touches_deferred += 1
        reasons = [*decision.reasons, *([zone_note] if zone_note else [])]
        state.note(
            now,
            "touch deferred",
            f"{label} to {decision.at:%Y-%m-%d %H:%M} UTC: {'; '.join(reasons)}",
        )
        return True

    # --- tasks: calls, voicemails, direct mail ---------------------------------------------

    async def _start_task(
        self, current: Cadence, progress: cadence.CadenceProgress, step: CadenceStep, label: str
    ) -> None:
        state, now = self._state, self._now()
        channel = step.channel
        assert channel != "email" and step.title is not None
        missing = missing_contact(channel, state.profile.phone, state.profile.address)
        if missing:
            state.touches_skipped += 1
            state.note(now, "touch skipped", f"{label}: {missing}")
            self._report(facts.touch, progress, current.id, step, "task_skipped", missing)
            self._advance(progress, current)
            return
        request = TaskRequest(
            key=cadence.touch_key(state.lead_id, progress, step),
            lead_id=state.lead_id,
            channel=channel,
            cadence=current.id,
            step=step.name,
            title=step.title,
            instructions=step.instructions,
            phone=state.profile.phone,
            address=state.profile.address,
            due_at=now + step.due_within,
            context=step_context(state, current.id, progress.cycle, step.name),
        )
        try:
            task_id = await workflow.execute_activity(
                CREATE_TASK,
                request,
                result_type=int,
                start_to_close_timeout=self._activity_timeout(),
                retry_policy=RETRY_FOREVER,
            )
        except ActivityError as err:
            self._failed(f"{channel} task", err)
            self._report(facts.touch, progress, current.id, step, "failed", self._state.last_error)
            self._advance(progress, current)
            return
        state.tasks.append(
            TaskRef(
                key=request.key,
                id=task_id,
                channel=channel,
                cadence=current.id,
                step=step.name,
                due_at=request.due_at,
            )
        )
        del state.tasks[:-TASKS_KEPT]
        state.note(now, "task", f"{channel} task #{task_id} queued for {label}")
        self._report(facts.touch, progress, current.id, step, "task", f"task #{task_id}")
        if state.cadence is progress:
            state.cadence = progress.model_copy(
                update={"waiting_task": request.key, "due_at": request.due_at}
            )

    def _close_task(
        self,
        key: str,
        status: Literal["done", "expired", "cancelled"],
        by: str,
        outcome: str | None = None,
        note: str | None = None,
    ) -> None:
        state, now = self._state, self._now()
        task = state.task(key)
        if task is not None:
            task.status, task.outcome, task.closed_by = status, outcome, by
        if status != "done":
            label = f"task #{task.id}" if task else "task"
            state.note(now, "task", f"{label} {status}")
        self._effects.append(
            TaskClosure(
                key=key,
                lead_id=state.lead_id,
                status=status,
                at=now,
                by=by,
                outcome=outcome,
                note=note,
            )
        )

    @workflow.update
    @rep_action
    def complete_task(self, done: TaskCompletion) -> ActionResult:
        state, now = self._state, self._now()
        task = state.task(done.task_key)
        assert task is not None  # the validator checked it
        self._close_task(task.key, "done", by=done.rep, outcome=done.outcome, note=done.note)
        state.note(
            now, "task", f"{task.channel} task #{task.id} done by {done.rep}: {done.outcome}"
        )
        self._report(facts.task_done, task, done.outcome, done.rep)
        # The outcome is a behaviour like any other: scored, and it may make the lead sales-ready.
        self._inbox.append(
            LeadEvent(
                lead_id=state.lead_id,
                type=outcome_event_type(task.channel, done.outcome),
                at=now,
                event_id=f"task:{task.key}",
                props={"task": task.id, "by": done.rep},
            )
        )
        progress = state.cadence
        if progress is not None and progress.waiting_task == task.key:
            progress = state.cadence = progress.model_copy(update={"waiting_task": None})
            current = self._rules_now().cadences.get(progress.cadence_id)
            if current is not None:
                self._advance(progress, current)
            else:
                state.cadence = progress.model_copy(update={"due_at": now})
        return self._result()

    @complete_task.validator
    def _validate_complete_task(self, done: TaskCompletion) -> None:
        rules = self._rules
        task = self._state.task(done.task_key)
        if rules is None or rules.routing.rep(done.rep) is None:
            error: str | None = unknown_rep_error(done.rep)
        elif task is None:
            error = f"lead {self._state.lead_id} has no task {done.task_key!r}"
        elif task.status == "done":
            error = f"task #{task.id} is already done ({task.outcome} by {task.closed_by})"
        elif task.status == "cancelled":
            error = f"task #{task.id} was cancelled: the lead went to sales ({self._state.owner})"
        else:
            error = outcome_error(task.channel, done.outcome)
        if error:
            raise ApplicationError(error, type="IllegalRepAction", non_retryable=True)

    # --- hand off -----------------------------------------------------------------------------

    async def _hand_off(self, qualified_by: str) -> None:
        await self._refresh_rules()
        state, rules, now = self._state, self._rules_now(), self._now()
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
            self._close_task(state.cadence.waiting_task, "cancelled", by="routing")
        self._drop_held("handed off to sales")
        state.cadence = None
        rep = await self._assign(decision.pool, decision, f"h{state.handoffs}")
        self._give_to(rep or decision.pool[0], f"handoff: {qualified_by}", "handoff")
        self._report(facts.handoff, self._threshold())

    def _give_to(
        self,
        rep: str,
        reason: str,
        category: Literal["handoff", "reassigned"],
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Make ``rep`` the owner, start the SLA clock and queue the rep's alert."""
        state, rules, now = self._state, self._rules_now(), self._now()
        handoff = state.handoff
        assert handoff is not None
        state.owner = rep
        handoff.sla_due_at = sla.sla_due_at(now, rules.routing)
        state.assignments.append(
            Assignment(
                rep=rep, at=now, reason=reason, handoff=handoff.number, due_at=handoff.sla_due_at
            )
        )
        self._report(facts.assignment)
        self._move("assigned", by="routing", reason=reason)
        self._push_to_crm(crm.OPEN)
        self._queue_rep_email(
            rep,
            category,
            subject=f"New sales-ready lead: {state.profile.display_name}"
            if category == "handoff"
            else f"Lead reassigned to you: {state.profile.display_name}",
            extra=extra,
        )

    async def _assign(
        self,
        candidates: list[str],
        decision: RouteDecision,
        attempt: str,
        exclude: list[str] | None = None,
    ) -> str | None:
        state, rules = self._state, self._rules_now()
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
        try:
            return await workflow.execute_activity(
                ASSIGN_REP,
                request,
                result_type=str | None,  # type: ignore[arg-type]  # the converter takes unions
                start_to_close_timeout=self._activity_timeout(),
                retry_policy=RETRY_FOREVER,
            )
        except ActivityError as err:
            self._failed("assignment", err)
            return None

    # --- the SLA --------------------------------------------------------------------------

    async def _sla_missed(self) -> None:
        state, rules, now = self._state, self._rules_now(), self._now()
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
                new_owner = await self._assign(
                    candidates,
                    handoff.route,
                    f"h{handoff.number}-miss{miss_number}",
                    exclude=excluded if self._patches.sla_ladder else None,
                )
                if state.stage != "assigned" or state.owner != missed_by:
                    # The rep accepted or rejected while the next rep was being picked: the
                    # rep's action stands; the miss is still escalated.
                    new_owner = None
                if self._patches.sla_ladder and new_owner in excluded:
                    new_owner = None  # an older worker's answer: the owner keeps the lead
        turn = facts.current_assignment(self._state)
        if turn is not None and turn.rep == missed_by:
            turn.misses += 1
            turn.first_missed_at = turn.first_missed_at or now
            turn.escalated_to = [*turn.escalated_to, *notified]
            turn.reassigned_to = new_owner
            self._report(facts.assignment)
            self._report(facts.handoff, self._threshold())
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
            self._queue_rep_email(
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
            self._give_to(
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
                if self._patches.sla_ladder
                else sla.sla_due_at(now, rules.routing)
            )
            self._record("assigned", "assigned", by="sla", reason=f"SLA missed by {missed_by}")

    # --- rep actions (updates) -----------------------------------------------------------

    @workflow.update
    @rep_action
    def accept(self, action: RepAction) -> ActionResult:
        return self._contacted(action, "accepted")

    @accept.validator
    def _validate_accept(self, action: RepAction) -> None:
        self._check("accept", action.rep)

    @workflow.update
    @rep_action
    def contact(self, action: RepAction) -> ActionResult:
        return self._contacted(action, "contacted")

    @contact.validator
    def _validate_contact(self, action: RepAction) -> None:
        self._check("contact", action.rep)

    @workflow.update
    @rep_action
    def reject(self, request: RejectRequest) -> ActionResult:
        state, rules, now = self._state, self._rules_now(), self._now()
        state.rejections.append(Rejection(at=now, rep=request.rep, reason=request.reason))
        self._responded(request.rep, "rejected")
        if not request.from_crm:
            self._push_to_crm(crm.NOT_CONVERTED)
        if rules.scoring.reset_behaviour_on_recycle:
            before = state.score.total
            state.score, _ = scoring.reset_behaviour(state.score, now, f"rejected by {request.rep}")
            self._report(
                facts.score,
                "reset",
                state.score.total - before,
                f"behaviour reset: rejected by {request.rep}",
            )
        state.owner = None
        state.unforwarded = []
        self._move("recycled", by=request.rep, reason=f"rejected: {request.reason}")
        self._report(facts.handoff, self._threshold())
        self._enrol(rules.cadences.recycle_cadence, f"rejected by {request.rep}: {request.reason}")
        if state.email_suppressed:
            self._move("suppressed", by="system", reason="email suppressed")
        return self._result()

    @reject.validator
    def _validate_reject(self, request: RejectRequest) -> None:
        self._check("reject", request.rep)

    @workflow.update
    @rep_action
    def outcome(self, request: OutcomeRequest) -> ActionResult:
        state, now = self._state, self._now()
        state.outcome = Outcome(
            result=request.result, amount=request.amount, at=now, rep=request.rep
        )
        amount = f" ({request.amount:g})" if request.amount is not None else ""
        self._move(request.result, by=request.rep, reason=f"{request.result}{amount}")
        self._report(facts.outcome, state.outcome, self._threshold())
        if not request.from_crm:
            self._push_to_crm(crm.CONVERTED if request.result == "won" else crm.NOT_CONVERTED)
        return self._result()

    @outcome.validator
    def _validate_outcome(self, request: OutcomeRequest) -> None:
        self._check("outcome", request.rep)

    def _contacted(self, action: RepAction, verb: str) -> ActionResult:
        state, now = self._state, self._now()
        if state.handoff and state.handoff.contacted_at is None:
            state.handoff.contacted_at = now
            state.handoff.sla_due_at = None
        self._responded(action.rep, verb)
        if state.stage == "assigned":
            self._move("working", by=action.rep, reason=verb)
            self._report(facts.handoff, self._threshold())
            if not action.from_crm:
                self._push_to_crm(crm.WORKING)
        else:
            state.note(now, verb, f"{action.rep} {verb} the lead")
        return self._result()

    def _check(self, action: RepActionName, rep: str) -> None:
        state = self._state
        rules = self._rules
        known = rules is not None and rules.routing.rep(rep) is not None
        error = rep_action_error(action, state.stage, state.owner, rep, known)
        if error:
            raise ApplicationError(error, type="IllegalRepAction", non_retryable=True)

    def _result(self) -> ActionResult:
        return ActionResult(
            lead_id=self._state.lead_id, stage=self._state.stage, owner=self._state.owner
        )

    @workflow.query(name=STATE_QUERY)
    def state(self) -> LeadState:
        return self._state

    # --- stage changes and side effects ---------------------------------------------------

    def _move(self, to: Stage, by: str, reason: str) -> None:
        state = self._state
        previous = state.stage
        state.stage = to
        state.note(self._now(), "stage", f"{previous} -> {to} by {by}: {reason}")
        self._record(previous, to, by, reason)

    def _record(self, from_stage: str, to: str, by: str, reason: str) -> None:
        state, now = self._state, self._now()
        state.transitions += 1
        if self._patches.ledger:
            self._report(facts.transition, from_stage, to, by, reason)
        else:  # runs from before the ledger write a transition row through an activity
            self._effects.append(
                TransitionRecord(
                    key=f"{state.lead_id}:t{state.transitions}",
                    lead_id=state.lead_id,
                    workflow_id=workflow.info().workflow_id,
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

    def _queue_rep_email(
        self,
        rep_id: str,
        category: EmailCategory,
        subject: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        state, rules = self._state, self._rules_now()
        rep = rules.routing.rep(rep_id)
        if rep is None:
            state.note(self._now(), "notify failed", f"rep {rep_id} is not in routing.yaml")
            return
        state.transitions += 1
        self._effects.append(
            EmailRequest(
                key=f"notify:{state.lead_id}:{category}:{state.transitions}:{rep_id}",
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

    def _forward_due(self) -> datetime:
        state = self._state
        every = self._rules_now().routing.forward_activity_every
        return (state.last_forward_at + every) if state.last_forward_at else self._now()

    def _forward_activity(self) -> None:
        state = self._state
        if state.owner:
            self._queue_rep_email(
                state.owner,
                "activity",
                f"New activity from {state.profile.display_name}",
                extra={"activity": list(state.unforwarded)},
            )
        state.note(
            self._now(), "forwarded", f"{len(state.unforwarded)} new activities to {state.owner}"
        )
        if self._rules_now().routing.crm.enabled:
            state.transitions += 1
            self._crm.put(
                CrmNote(
                    key=f"{state.lead_id}:activity:{state.transitions}",
                    lead_id=state.lead_id,
                    subject=f"Nurture: {len(state.unforwarded)} new activities",
                    description="\n".join(state.unforwarded),
                )
            )
        state.unforwarded = []
        state.last_forward_at = self._now()

    def _push_to_crm(self, status: str) -> None:
        """Queue the lead's CRM record update (only when routing.yaml enables the CRM)."""
        state, rules = self._state, self._rules_now()
        if not rules.routing.crm.enabled:
            return
        state.transitions += 1
        self._crm.put(
            CrmLeadUpsert(
                key=f"{state.lead_id}:crm:{state.transitions}",
                lead_id=state.lead_id,
                fields=crm.lead_fields(state, rules.routing, status),
            )
        )

    async def _write_to_crm(self, queued: list[CrmLeadUpsert | CrmNote]) -> int:
        await self._carry_out(queued[0])  # retried until it succeeds or is refused
        return 1

    async def _carry_out(self, effect: Effect) -> None:
        if isinstance(effect, EmailRequest):
            await self._send(effect)
            return
        activity_name = {
            "transition": RECORD_TRANSITION,
            "task": CLOSE_TASK,
            "crm_lead": CRM_UPSERT_LEAD,
            "crm_task": CRM_ADD_TASK,
        }[effect.kind]
        try:
            await workflow.execute_activity(
                activity_name,
                effect,
                start_to_close_timeout=self._activity_timeout(),
                retry_policy=RETRY_FOREVER,
            )
        except ActivityError as err:
            what = {"crm_lead": "CRM push", "crm_task": "CRM activity"}.get(effect.kind, "record")
            self._failed(what, err)

    async def _send(self, request: EmailRequest) -> EmailResult | None:
        try:
            return await self._send_now(request)
        except ActivityError as err:
            self._failed(f"{request.category} email", err)
            return None

    async def _send_now(self, request: EmailRequest) -> EmailResult:
        return await workflow.execute_activity(
            SEND_EMAIL,
            request,
            result_type=EmailResult,
            start_to_close_timeout=self._activity_timeout(),
            retry_policy=RETRY_FOREVER,
        )

    def _failed(self, what: str, err: ActivityError) -> None:
        cause = err.cause
        message = str(cause) if cause is not None else str(err)
        self._state.last_error = f"{what} failed: {message}"
        self._state.note(self._now(), "error", self._state.last_error)
        workflow.logger.warning("%s failed for lead %s: %s", what, self._state.lead_id, message)

    # --- helpers ------------------------------------------------------------------------

    async def _refresh_rules(self) -> None:
        known = self._rules.version if self._rules else ""
        asked_at = self._now()
        fresh = await workflow.execute_local_activity(
            LOAD_RULES,
            LoadRulesRequest(known_version=known),
            result_type=Rules | None,  # type: ignore[arg-type]  # the converter takes unions
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RETRY_FOREVER,
        )
        self._hold_clock(asked_at)
        if fresh is not None:
            if self._rules is not None:
                self._state.note(self._now(), "rules", f"rules changed to {fresh.version}")
            self._rules = fresh
            self._state.rules_version = fresh.version
            self._set_fit()

    def _rules_now(self) -> Rules:
        if self._rules is None:
            raise ApplicationError("rules not loaded yet")
        return self._rules

    def _set_fit(self) -> None:
        state, rules = self._state, self._rules
        if rules is None:
            return
        before = state.score.total
        state.score = scoring.with_fit(state.score, state.profile, rules.scoring)
        state.grade = scoring.grade(state.score, rules.scoring)
        if state.score.total != before:
            fit = ", ".join(f"{k} {v:+d}" for k, v in state.score.fit_matches.items())
            self._report(
                facts.score, "fit", state.score.total - before, fit or "no fit rule matches"
            )

    def _activity_timeout(self) -> timedelta:
        return self._rules_now().engine.activity_timeout

    def _should_continue_as_new(self) -> bool:
        limit = self._rules_now().engine.max_events_per_run
        return workflow.info().is_continue_as_new_suggested() or self._events_this_run >= limit

    def _now(self) -> datetime:
        held = self._held_clock
        if held is not None:
            with contextlib.suppress(RuntimeError):  # no running loop: nothing is held
                if asyncio.current_task() is held[0]:
                    return held[1]
        return workflow.now()

    def _hold_clock(self, at: datetime) -> None:
        """Read the time as ``at`` in this task until it next waits for anything.

        Called as a local activity resolves. The workflow clock there is not the same on replay:
        when the result reaches the workflow in a later workflow task than the one that recorded
        its marker (a busy worker, a query during the activity), the first run reads that later
        task's start time, a replay reads the marker's completion time; a touch due in between
        is sent on one and not the other, and the lead can never be replayed again (issue 13,
        replay after a slow local activity). ``at``, the time read before the activity was
        asked for, is the same on both; when the result arrives in the workflow task that asked
        for it (the usual case) it is only the activity's duration (milliseconds) earlier, and
        after retries (rules unreadable for a while) it is when the step began.

        Only this task sees it (an update or signal handler running meanwhile reads its own
        workflow task's time, as on replay), and only until the task next waits: the release
        is queued behind the running step, so it runs before anything the task awaits can
        resume it (after an activity, the time of the task that delivered it is the same on
        replay)."""
        hold = (asyncio.current_task(), at)
        self._held_clock = hold
        asyncio.get_running_loop().call_soon(self._release_clock, hold)

    def _release_clock(self, hold: tuple[asyncio.Task[Any] | None, datetime]) -> None:
        if self._held_clock is hold:
            self._held_clock = None

    def _publish(self) -> None:
        """Upsert search attributes that changed, so operators can filter in the UI."""
        changes = visibility.changed(visibility.search_attributes(self._state), self._published)
        self._published.update(changes)
        updates: list[SearchAttributeUpdate[Any]] = []
        for key in SEARCH_ATTRIBUTES:
            if key.name in changes:
                value: Any = changes[key.name]
                updates.append(key.value_unset() if value is None else key.value_set(value))
        if updates:
            workflow.upsert_search_attributes(updates)
        if self._patches.ledger:
            self._ledger.start()

    # --- the read model -------------------------------------------------------------------

    def _report(
        self,
        build: Callable[Concatenate[LeadState, facts.Stamp, FactArgs], list[Fact]],
        *args: FactArgs.args,
        **kwargs: FactArgs.kwargs,
    ) -> None:
        """Queue for the read model the facts ``build`` makes of the lead as it is now. Runs
        from before the ledger report none, and build none (building numbers facts)."""
        if not self._patches.ledger:
            return
        info = workflow.info()
        stamp = facts.Stamp(self._now(), info.run_id, info.first_execution_run_id)
        made = build(self._state, stamp, *args, **kwargs)
        if made:
            self._ledger.put(*made)

    def _threshold(self) -> int:
        """The rules' sales-ready threshold (for handoffs from before each kept its own)."""
        return self._rules_now().scoring.sales_ready_threshold

    def _responded(self, rep: str, verb: str) -> None:
        """The rep's first accept, contact or reject on their turn stops its SLA clock."""
        turn = facts.current_assignment(self._state)
        if turn is None or turn.rep != rep or turn.responded_at is not None:
            return
        turn.responded_at, turn.response = self._now(), verb
        self._report(facts.assignment)

    def _snapshot(self) -> LeadSnapshot:
        return facts.snapshot(self._state, workflow.info().workflow_id)

    async def _write_facts(self, queued: list[Fact]) -> int:
        """Write a batch of queued facts and the lead's row (a local activity)."""
        snapshot = self._snapshot()
        written = queued[:FACTS_PER_BATCH]
        batch = facts.batch(self._state, snapshot, written, self._now())
        try:
            # Not held to the time it was asked at (``_hold_clock``): after it, the time
            # only versions rows, never decides a command.
            # Milliseconds inside the workflow task normally. A slow or unavailable
            # database holds the lead's next command for at most ~10 s: retries after
            # that wait on durable timers, and the lead carries on meanwhile.
            await workflow.execute_local_activity(
                RECORD_FACTS,
                batch,
                start_to_close_timeout=timedelta(seconds=5),
                local_retry_threshold=timedelta(seconds=10),
                retry_policy=RETRY_FOREVER,
            )
        except ActivityError as err:
            self._failed("read model write", err)
        self._reported = snapshot
        return len(written)
