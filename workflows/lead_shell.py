"""The life of one lead, as one long-lived Temporal workflow: the shell around its core.

Read top to bottom: a lead is created by its first profile or event; behaviour signals move its
score; while in marketing it follows a cadence on durable timers; the moment it is sales-ready
it is handed to the rep routing picks, with its story; the SLA clock then runs until the rep
makes contact, escalating and reassigning on a miss; a reject sends it back to nurturing;
won/lost close the sales loop (the workflow stays, keeping the customer's record).

Every decision is the lead's core's (``nurture/core/lead.py``, no Temporal there); this shell
waits for work and time, runs the core's steps, and carries out what they ask in order: an
activity with a retry policy and an idempotency key per side effect, a local activity to read
the rules (at the start of each run, before each touch and at each handoff, so a marketer's
change never applies half-way through a step: the history records their version, the rules
come from the worker's shelf) and to write the read model's facts.

Passed through the sandbox and imported once per worker process: ``workflows/lead.py`` declares
the workflow on this class, so the module the sandbox executes afresh for every lead is a few
lines, and a cached lead holds its state, not its own copy of these functions.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import MetricCounter, Priority, RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from nurture.contract import shared_rules
    from nurture.contract.ledger import FACTS_PER_BATCH, RECORD_FACTS, Fact, LeadSnapshot
    from nurture.contract.messages import (
        ASSIGN_REP,
        CLOSE_TASK,
        CREATE_TASK,
        CRM_ADD_TASK,
        CRM_UPSERT_LEAD,
        LOAD_RULES,
        RECORD_TRANSITION,
        SEND_EMAIL,
        CrmLeadUpsert,
        CrmNote,
        Effect,
        EmailRequest,
        EmailResult,
        LeadInput,
        LeadState,
        LoadRulesRequest,
        OutcomeRequest,
        PreferenceChange,
        RejectRequest,
        RepAction,
        TaskCompletion,
    )
    from nurture.contract.names import (
        EVENT_SIGNAL,
        FORGET_SIGNAL,
        LEAD_ERASED,
        PREFERENCES_UPDATE,
        PROFILE_SIGNAL,
        SEARCH_ATTRIBUTES,
        STATE_QUERY,
    )
    from nurture.core import facts, meters, urgency, visibility
    from nurture.core.base import Run
    from nurture.core.commands import Ask, CreateTask, Failed, ReadRules, SendEmail, Step
    from nurture.core.lead import LeadCore, described
    from nurture.core.patches import Patches
    from nurture.domain.leads import LeadEvent, LeadProfile
    from nurture.domain.rules import Rules
    from workflows.clock import HeldClock
    from workflows.guards import CONTROL_FLOW_ERRORS, refuse_if, rep_action
    from workflows.pumps import Pump

RETRY_FOREVER = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=["TemplateError", "SendGridRejected", "ConfigError", "CrmRejected"],
)
CRM_KINDS = frozenset({"crm_lead", "crm_task"})
FACTS_CARRIED_MAX = 1000  # ~300 bytes each: well inside a run's input
CARRIED_BYTES_MAX = 128 * 1024
"""The most queued events (and, apart, the most facts not yet written) a run hands the next in
its input, as JSON: with the lead's state, well inside Temporal's 512 KB warning; an event's
``props`` alone may be 16 KB (``nurture.core.patches.PATCH_BOUNDED_CARRY``)."""
SALES_FIRST_FOR = timedelta(seconds=5)
"""The longest the read-model write waits for an activity sales waits for (a timer bounds it:
while SendGrid is down the alert is retried for as long as it takes, and the read model must
still show the handoff)."""
WRITE_TIMEOUT = timedelta(seconds=5)
WRITE_RETRIED_IN_TASK = timedelta(seconds=1)
"""A failed read-model write is tried once more in its workflow task, after 1 s (a blip), and
after that on durable timers (2 s, 4 s, … as ``RETRY_FOREVER`` doubles), so a database that
refuses holds the lead's workflow task, its queries and its next command for about a second,
and one that hangs for two attempts. Retried in the task while the backoff was up to 10 s,
a refusing database held them 15 s (measured), a hanging one five 5 s attempts, ~40 s, and
queries waited until Core completed the task at 80 % of its timeout (24 s). A marker records
each failed attempt with its backoff, and a replay takes the backoff from it: no patch
(``lead-db-outage-v10`` was recorded before this and replays)."""
EFFECT_ACTIVITIES = {  # kind: (activity, what a failure names)
    "transition": (RECORD_TRANSITION, "record"),
    "task": (CLOSE_TASK, "record"),
    "crm_lead": (CRM_UPSERT_LEAD, "CRM push"),
    "crm_task": (CRM_ADD_TASK, "CRM activity"),
}

Result = TypeVar("Result")


def failure(err: ActivityError) -> Failed:
    """How an activity failed for good, as the core is told it."""
    cause = err.cause
    unrenderable = (
        cause.message
        if isinstance(cause, ApplicationError) and cause.type == "TemplateError"
        else None
    )
    kind = cause.type if isinstance(cause, ApplicationError) else type(cause or err).__name__
    return Failed(str(cause) if cause is not None else str(err), unrenderable, kind or "")


class LeadShell:
    """Everything a lead workflow does; ``LeadWorkflow`` is the definition Temporal runs."""

    def __init__(self, inp: LeadInput) -> None:
        info = workflow.info()
        self._clock = HeldClock()
        self._core = core = LeadCore(
            inp.state or LeadState(lead_id=inp.lead_id, profile=LeadProfile(lead_id=inp.lead_id)),
            run=Run(info.workflow_id, info.run_id, info.first_execution_run_id),
            clock=self._clock.now,
            log=workflow.logger,
            inbox=list(inp.pending),
            # CRM writes have their own queue: a CRM outage must never hold back the rep's
            # alert, the SLA clock or anything else the lead does. Within it, order is kept.
            effects=[e for e in inp.pending_effects if e.kind not in CRM_KINDS],
            crm=Pump(
                [e for e in inp.pending_effects if isinstance(e, CrmLeadUpsert | CrmNote)],
                self._write_to_crm,
            ),
            # Facts for the read model, written in order by their own pump (a local activity
            # per batch: nothing in the history but its marker, and the lead never waits).
            ledger=Pump(
                inp.pending_facts,
                self._write_facts,
                more=lambda: core.snapshot() != self._reported,
                after=lambda: self._count(),  # the facts written, as soon as they are
            ),
        )
        self._reported: LeadSnapshot | None = None
        self._wake_timer: asyncio.Task[None] | None = None
        self._wake_timer_at: datetime | None = None
        self._published: dict[str, visibility.SearchValue] = {}
        self._tallied = meters.tallies(core.state, core.ledger)  # what the counters have
        self._counters: dict[str, MetricCounter] = {}
        self._clock_watch: asyncio.Task[None] | None = None
        self._forgotten = False
        self._sales_in_flight = 0
        """Activities sales waits for (picking the rep, the rep's alert) not yet done."""
        self._rules_fresh = False
        """The rules were read and the run has waited for nothing since: same workflow task."""

    # --- the life of a lead ------------------------------------------------------------------

    async def live(self, inp: LeadInput) -> None:
        """The workflow's run: never returns (it continues as new when its history grows)."""
        core = self._core
        core.patches = Patches.asked(workflow.patched)  # first thing: see nurture/core/patches.py
        # Never decide on events a query brought ahead of their workflow task (no command).
        self._clock_watch = asyncio.create_task(self._clock.watch())
        await self._drive(core.read_rules())
        core.crm.start()
        core.begin_run(new=inp.state is None, suppressed=inp.suppressed)
        while True:
            await self._drain()
            core.enrol_if_idle()
            if core.patches.enrolment_visible:
                self._publish()  # the segment it was enrolled in, at once
            if self._should_continue_as_new():
                self._rules_fresh = False
                await self._apply_what_would_not_fit()
                await workflow.wait_condition(workflow.all_handlers_finished)
                # Facts not yet written travel in the next run's input: keep that small (a
                # database outage holds the lead here until the backlog is written).
                await workflow.wait_condition(self._facts_fit)
                await self._drain()
                self._clock.check_in_workflow_task()
                workflow.continue_as_new(core.continued())
            wake_at = core.next_wakeup()
            self._rules_fresh = False  # what is due next may come in a later workflow task
            if wake_at is None or wake_at > core.now():
                if core.patches.steady_timer:
                    await self._wait_for_work(wake_at)
                else:
                    timeout = None if wake_at is None else wake_at - core.now()
                    try:
                        await workflow.wait_condition(self._has_work, timeout=timeout)
                    except TimeoutError:  # a timer came due: fine
                        self._clock.check_reached(wake_at)
            await self._drive(core.timers_due())
            self._publish()

    def _has_work(self) -> bool:
        return bool(self._core.inbox or self._core.effects)

    async def _apply_what_would_not_fit(self) -> None:
        """Apply queued events and profiles, oldest first, past the run's limit, until those
        left fit in the next run's input (``CARRIED_BYTES_MAX``)."""
        core = self._core
        if not core.patches.bounded_carry:  # a run from before: no need to weigh its queue
            return
        sizes = [_json_bytes([item]) for item in core.inbox]
        carried = sum(sizes)
        if carried <= CARRIED_BYTES_MAX:
            return
        for size in sizes:  # signals arriving meanwhile join the queue's end
            if carried <= CARRIED_BYTES_MAX:
                break
            await self._apply(core.inbox.pop(0))
            carried -= size
        self._publish()  # and start writing their facts

    def _facts_fit(self) -> bool:
        """The facts not yet written are few enough to travel in the next run's input."""
        items = self._core.ledger.items
        if len(items) > FACTS_CARRIED_MAX:
            return False
        return not self._core.patches.bounded_carry or _json_bytes(items) <= CARRIED_BYTES_MAX

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
            timer = asyncio.create_task(workflow.sleep(wake_at - self._core.now()))
            self._wake_timer_at = wake_at
        self._wake_timer = timer
        await workflow.wait_condition(
            lambda: self._has_work() or (timer is not None and timer.done())
        )
        if timer is not None and timer.done():
            self._clock.check_reached(self._wake_timer_at)

    async def _drain(self) -> None:
        """Apply queued profiles/events and carry out queued side effects, in order."""
        core = self._core
        while self._has_work() and not self._should_continue_as_new():
            if core.inbox:
                await self._apply(core.inbox.pop(0))
            else:
                await self._carry_out(core.effects.pop(0))
        self._publish()

    async def _apply(self, item: LeadEvent | LeadProfile) -> None:
        """Apply one profile or event; one that cannot be applied is recorded and skipped, so
        it never fails the workflow task (which would be retried, and fail, forever)."""
        try:
            await self._drive(self._core.apply(item))
        except CONTROL_FLOW_ERRORS:
            raise
        except Exception as err:
            self._core.bad_input(described(item), err)

    # --- signals: behaviour and profile ---------------------------------------------------

    @workflow.signal(name=PROFILE_SIGNAL)
    def profile(self, profile: LeadProfile) -> None:
        self._core.inbox.append(profile)

    @workflow.signal(name=EVENT_SIGNAL)
    def event(self, event: LeadEvent) -> None:
        self._core.inbox.append(event)

    # --- rep actions (updates) -----------------------------------------------------------

    @workflow.update
    @rep_action
    def complete_task(self, done: TaskCompletion) -> None:
        self._core.complete_task(done)

    @complete_task.validator
    def _validate_complete_task(self, done: TaskCompletion) -> None:
        refuse_if(self._core.task_completion_error(done))

    @workflow.update
    @rep_action
    def accept(self, action: RepAction) -> None:
        self._core.contacted(action, "accepted")

    @accept.validator
    def _validate_accept(self, action: RepAction) -> None:
        refuse_if(self._core.rep_action_error("accept", action.rep))

    @workflow.update
    @rep_action
    def contact(self, action: RepAction) -> None:
        self._core.contacted(action, "contacted")

    @contact.validator
    def _validate_contact(self, action: RepAction) -> None:
        refuse_if(self._core.rep_action_error("contact", action.rep))

    @workflow.update
    @rep_action
    def reject(self, request: RejectRequest) -> None:
        self._core.reject(request)

    @reject.validator
    def _validate_reject(self, request: RejectRequest) -> None:
        refuse_if(self._core.rep_action_error("reject", request.rep))

    @workflow.update
    @rep_action
    def outcome(self, request: OutcomeRequest) -> None:
        self._core.close(request)

    @outcome.validator
    def _validate_outcome(self, request: OutcomeRequest) -> None:
        refuse_if(self._core.rep_action_error("outcome", request.rep))

    @workflow.signal(name=FORGET_SIGNAL)
    def forget(self) -> None:
        """The lead is being erased (and terminated next): its state is no one's to read."""
        self._forgotten = True

    # --- the person's own choice (an update) ------------------------------------------------

    @workflow.update(name=PREFERENCES_UPDATE)
    @rep_action
    def preferences(self, change: PreferenceChange) -> None:
        self._core.set_preferences(change)

    @preferences.validator
    def _validate_preferences(self, change: PreferenceChange) -> None:
        refuse_if(self._core.preference_error(change))

    @workflow.query(name=STATE_QUERY)
    def state(self) -> LeadState:
        if self._forgotten:
            raise ApplicationError("this lead was erased", type=LEAD_ERASED)
        return self._core.state

    # --- carrying out what the core asks ----------------------------------------------------

    async def _drive(self, step: Step[Result]) -> Result:
        """Run a step of the core, answering each ask in turn, to its end."""
        answer: Any = None
        while True:
            try:
                ask = step.send(answer)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            answer = await self._answer(ask)

    async def _answer(self, ask: Ask) -> Any:
        if isinstance(ask, ReadRules):
            return await self._read_rules(ask)
        try:
            if isinstance(ask, SendEmail):
                return await self._activity(SEND_EMAIL, ask.request, EmailResult)
            if isinstance(ask, CreateTask):
                return await self._activity(CREATE_TASK, ask.request, int)
            # The converter takes the union; mypy wants a class.
            return await self._activity(ASSIGN_REP, ask.request, str | None)  # type: ignore[arg-type]
        except ActivityError as err:
            return failure(err)

    async def _read_rules(self, ask: ReadRules) -> Rules | None:
        if self._rules_fresh and self._core.patches.sales_first:
            return None  # read in this workflow task, before this step: they are the same
        asked_at = self._core.now()
        by_version = self._core.patches.rules_by_version
        fresh = await workflow.execute_local_activity(
            LOAD_RULES,
            LoadRulesRequest(known_version=ask.known_version, by_version=by_version),
            result_type=Rules | str | None,  # type: ignore[arg-type]  # the converter takes unions
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RETRY_FOREVER,
        )
        self._clock.hold(asked_at)  # see workflows/clock.py: the same time on replay
        self._rules_fresh = True
        if isinstance(fresh, str):  # a version: the same content on every replay
            return self._shared_rules(fresh)
        return fresh

    @staticmethod
    def _shared_rules(version: str) -> Rules:
        """The rules of ``version`` from the worker's shelf, which reads a version it never met
        from the engine database: a read of content that never changes, so deterministic, and
        done out of the sandbox's reach (the database client is not workflow code)."""
        with workflow.unsafe.sandbox_unrestricted(), workflow.unsafe.imports_passed_through():
            return shared_rules.SHELF.rules(version)

    async def _activity(
        self, name: str, request: Any, result_type: type[Result] | None = None
    ) -> Result:
        """An activity, ahead of others on the queue when sales waits for it (the priority key is
        no part of the command a replay matches, so no patch is needed)."""
        self._clock.check_in_workflow_task()  # every command: see workflows/clock.py
        self._rules_fresh = False  # its result comes in a later workflow task
        priority_key = urgency.priority_key(request)
        sales = priority_key == urgency.SALES
        self._sales_in_flight += sales
        try:
            return await workflow.execute_activity(  # type: ignore[no-any-return]
                name,
                request,
                result_type=result_type,
                start_to_close_timeout=self._core.rules_now().engine.activity_timeout,
                retry_policy=RETRY_FOREVER,
                priority=Priority(priority_key=priority_key),
            )
        finally:
            self._sales_in_flight -= sales

    async def _carry_out(self, effect: Effect) -> None:
        """An alert, a task closure, a transition record or a CRM write, queued by the core."""
        try:
            if isinstance(effect, EmailRequest):
                what = f"{effect.category} email"
                await self._activity(SEND_EMAIL, effect, EmailResult)
            else:
                activity_name, what = EFFECT_ACTIVITIES[effect.kind]
                await self._activity(activity_name, effect)
        except ActivityError as err:
            self._core.failed(what, failure(err))

    async def _write_to_crm(self, queued: list[CrmLeadUpsert | CrmNote]) -> int:
        await self._carry_out(queued[0])  # retried until it succeeds or is refused
        return 1

    async def _write_facts(self, queued: list[Fact]) -> int:
        """Write a batch of queued facts and the lead's row (a local activity)."""
        core = self._core
        if self._sales_in_flight and core.patches.sales_first:
            await self._after_sales_work()
        snapshot = core.snapshot()
        written = queued[:FACTS_PER_BATCH]
        batch = facts.batch(core.state, snapshot, written, core.now())
        try:
            # Not held to the time it was asked at (see workflows/clock.py): after it, the
            # time only versions rows, never decides a command. Milliseconds inside the
            # workflow task normally; see WRITE_RETRIED_IN_TASK for a database that fails.
            await workflow.execute_local_activity(
                RECORD_FACTS,
                batch,
                start_to_close_timeout=WRITE_TIMEOUT,
                local_retry_threshold=WRITE_RETRIED_IN_TASK,
                retry_policy=RETRY_FOREVER,
            )
        except ActivityError as err:
            core.failed("read model write", failure(err))
        self._reported = snapshot
        return len(written)

    async def _after_sales_work(self) -> None:
        """Until the activities sales waits for are done, or ``SALES_FIRST_FOR`` passed.

        A local activity holds back every command of its workflow task until it is done: the
        write started beside a handoff's ``assign_rep`` delayed that activity, and the one
        beside the alert delayed the alert. Waiting, the write goes with the workflow task
        that has the alert's result, and the read model is behind by that round trip."""
        self._clock.check_in_workflow_task()  # the wait's timer is a command
        # Timed out: sales still waits (SendGrid down?), the read model must not.
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: not self._sales_in_flight,
                timeout=SALES_FIRST_FOR,
                timeout_summary="read-model write waits for the rep's alert",
            )

    def _publish(self) -> None:
        """Upsert search attributes that changed, so operators can filter in the UI; start
        writing the read model's facts."""
        self._clock.check_in_workflow_task()  # an upsert is a command
        changes = visibility.changed(
            visibility.search_attributes(self._core.state), self._published
        )
        self._published.update(changes)
        updates: list[SearchAttributeUpdate[Any]] = []
        for key in SEARCH_ATTRIBUTES:
            if key.name in changes:
                value: Any = changes[key.name]
                updates.append(key.value_unset() if value is None else key.value_set(value))
        if updates:
            workflow.upsert_search_attributes(updates)
        if self._core.patches.ledger:
            self._core.ledger.start()
        self._count()

    def _count(self) -> None:
        """Add what the lead did since the last look to the worker's counters (Temporal's
        metric meter records nothing while a history replays)."""
        now = meters.tallies(self._core.state, self._core.ledger)
        for name, increase in meters.moved(self._tallied, now).items():
            if name not in self._counters:
                self._counters[name] = workflow.metric_meter().create_counter(name)
            self._counters[name].add(increase)
        self._tallied = now

    def _should_continue_as_new(self) -> bool:
        limit = self._core.rules_now().engine.max_events_per_run
        return workflow.info().is_continue_as_new_suggested() or self._core.events_this_run >= limit


def _json_bytes(items: list[Any]) -> int:
    """What ``items`` (pydantic models) weigh in a run's input, as JSON."""
    return sum(len(item.model_dump_json()) for item in items)
