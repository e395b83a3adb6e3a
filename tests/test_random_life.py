"""A randomised life on the real dev server with a real worker (issue 13, "make it hard to ship
again"): seeded random walks of events, profile updates, rep actions by the owner and by other
reps, SLA misses under a time scale, and worker restarts mid-walk. After every step the
invariants below must hold for every lead of the walk. They catch finding 1 (search attributes
stale after accept/contact/outcome) and finding 2 (an SLA miss "reassigns" a lead to the rep who
already owns it).

The seeds' walks run side by side, each with its own task queue, worker, stand-in and database.
A failure names the seed and the step, with the walk so far and any failed workflow tasks, and
keeps the leads' histories under test-artifacts/; replay one walk with
``NURTURE_LIFE_SEEDS=7 pytest tests/test_random_life.py``. The seed fixes every choice; the
clocks (timers, visibility) are real, so a timing-dependent failure may take a few runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import shutil
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.email import IDEMPOTENCY_ARG
from nurture.access.consent import LinkSigner
from nurture.client.sales import LeadActionError, act, query_state
from nurture.client.starting import send_event, send_profile
from nurture.config.rules_source import RulesSource
from nurture.config.settings import MailerSettings, WorkerOptions
from nurture.contract.messages import LeadState, OutcomeRequest, RejectRequest, RepAction
from nurture.contract.names import OWNER, SLA_DUE, STAGE
from nurture.domain.cadence import total_touches
from nurture.domain.leads import LeadEvent, LeadProfile, workflow_id_for
from nurture.domain.rules import Rules
from nurture.domain.stages import RepAction as RepActionName
from nurture.domain.stages import rep_action_error
from nurture.standins.sendgrid_standin import SendGridStandIn
from tests.conftest import ARTIFACTS, TEST_RULES, TEST_SECRET, TEST_TEMPLATES
from worker import build_worker

SEEDS = [int(s) for s in os.environ.get("NURTURE_LIFE_SEEDS", "1,2,3").split(",")]
LEADS_PER_WALK = 4
STEPS_PER_WALK = 25
TIME_SCALE = 3600.0  # the 4h contact SLA lasts 4 s, a 1h touch delay 1 s, 1d 24 s
SLA_SECONDS = 4 * 3600 / TIME_SCALE
SETTLED_WITHIN = 2.0
"""Seconds visibility may lag the state (~0.3 s when idle). Shorter than the SLA: a lead's
next timer republishes its search attributes, and must not hide a handler that forgot to."""
REGIONS = ["EMEA", "AMER", "LATAM", "LATAM", "APAC"]  # LATAM: one rep away, one capped
EVENT_TYPES = {
    "page_view": 6,
    "email_open": 4,
    "email_click": 4,
    "download": 4,
    "form_fill": 5,
    "requested_call": 8,
    "careers_page": 1,
    "unsubscribe": 1,
}
STEP_KINDS = {
    "event": 30,
    "profile": 10,
    "owner action": 25,
    "other rep action": 15,
    "wait past the SLA": 10,
    "restart the worker": 6,
}
ACTIONS: list[RepActionName] = ["accept", "contact", "reject", "outcome"]


# --- the engine: a worker that can be stopped and replaced mid-walk ----------------------------


def life_rules(tmp_path: Path) -> Path:
    """The test rules, with LATAM's ines away around today (the assignment activity's wall
    clock): a miss in LATAM then has nobody left in the pool but a rep who cannot take it."""
    config = tmp_path / "rules"
    shutil.copytree(TEST_RULES, config)
    routing_file = config / "routing.yaml"
    routing = yaml.safe_load(routing_file.read_text())
    today = datetime.now(UTC).date()
    for rep in routing["reps"]:
        if rep["id"] == "ines":
            rep["away"] = [
                {"from": today - timedelta(days=30), "until": today + timedelta(days=30)}
            ]
    routing_file.write_text(yaml.safe_dump(routing, sort_keys=False))
    return config


@dataclass
class LifeEngine:
    client: Client
    options: WorkerOptions
    source: RulesSource
    worker: Worker | None = None
    running: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.worker = build_worker(self.client, self.options, self.source)
        self.running = asyncio.create_task(self.worker.run())

    async def stop(self) -> None:
        if self.worker is not None and self.running is not None:
            await self.worker.shutdown()
            with contextlib.suppress(asyncio.CancelledError):
                await self.running
        self.worker = self.running = None

    @property
    def rules(self) -> Rules:
        return self.source.current()


# --- invariants -----------------------------------------------------------------------------


@dataclass
class Visible:
    stage: str | None
    owner: str | None
    sla_due_at: datetime | None


def expected_visible(state: LeadState) -> Visible:
    """What visibility must show for this state: the SLA due time only while it runs."""
    due = state.handoff.sla_due_at if state.handoff and state.stage == "assigned" else None
    return Visible(state.stage, state.owner, due)


def same_instant(a: datetime | None, b: datetime | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) < timedelta(milliseconds=1)  # visibility keeps what the SDK sent


def visibility_mismatches(states: dict[str, LeadState], visible: dict[str, Visible]) -> list[str]:
    wrong = []
    for lead, state in states.items():
        want, seen = expected_visible(state), visible.get(workflow_id_for(lead))
        if seen is None:
            wrong.append(f"{lead}: not listed as running in visibility")
        elif (want.stage, want.owner) != (seen.stage, seen.owner) or not same_instant(
            want.sla_due_at, seen.sla_due_at
        ):
            wrong.append(
                f"{lead}: state query says stage={want.stage} owner={want.owner} "
                f"sla_due={want.sla_due_at}, visibility says stage={seen.stage} "
                f"owner={seen.owner} sla_due={seen.sla_due_at}"
            )
    return wrong


def never_reassigned_to_themself(lead: str, state: LeadState) -> None:
    """Consecutive turns of one handoff go to different reps; a miss never hands the lead to
    a rep who already missed on it (finding 2)."""
    turns = state.assignments
    for before, after in itertools.pairwise(turns):
        assert not (before.handoff == after.handoff and before.rep == after.rep), (
            f"{lead}: handoff {after.handoff} given to {after.rep} again, who already owned it "
            f"({after.reason}); turns: {[(t.rep, t.reason) for t in turns]}"
        )
    if state.handoff is not None:
        missed = state.handoff.missed_by
        for escalation in state.handoff.escalations:
            earlier = missed[: escalation.miss_number]
            assert escalation.reassigned_to not in earlier, (
                f"{lead}: miss {escalation.miss_number} by {escalation.missed_by} reassigned to "
                f"{escalation.reassigned_to}, who already missed on this lead ({earlier})"
            )


def every_touch_accounted_for(lead: str, state: LeadState, rules: Rules) -> None:
    """Each step the cadence passed was sent or skipped with a reason; held (deferred) touches
    say why; no touch failed unseen."""
    timeline = state.timeline
    for entry in timeline:
        if entry.kind.startswith("touch") and entry.kind != "touch":
            _, _, reason = entry.detail.partition(": ")
            assert reason.strip(), f"{lead}: '{entry.kind}' without a reason: {entry.detail!r}"
        assert not (entry.kind == "error" and "touch" in entry.detail), (
            f"{lead}: a touch failed and the cadence moved on: {entry.detail!r}"
        )
    progress = state.cadence
    if progress is None:
        return
    enrolled = [
        i
        for i, e in enumerate(timeline)
        if e.kind == "cadence" and e.detail.startswith(f"enrolled in {progress.cadence_id} ")
    ]
    current = rules.cadences.get(progress.cadence_id)
    if not enrolled or current is None or len(timeline) >= 200:
        return  # the enrolment scrolled out of the kept timeline
    outcomes = [
        e
        for e in timeline[enrolled[-1] + 1 :]
        if e.kind in ("touch", "touch skipped", "task")
        and f"{progress.cadence_id}/" in e.detail.split(" (cycle")[0]
    ]
    passed = (
        total_touches(current)
        if progress.parked
        else (progress.cycle - 1) * len(current.steps) + progress.step_index
    )
    assert len(outcomes) == passed, (
        f"{lead}: cadence {progress.cadence_id} passed {passed} step(s) but the timeline "
        f"accounts for {len(outcomes)}: {[(e.kind, e.detail) for e in outcomes]}"
    )


def no_key_sent_twice(standin: SendGridStandIn) -> None:
    keys = Counter(m.custom_args.get(IDEMPOTENCY_ARG) for m in standin.messages)
    twice = {key: n for key, n in keys.items() if key and n > 1}
    assert not twice, f"idempotency keys sent more than once: {twice}"


def touches_sent_match_the_outbox(
    states: dict[str, LeadState], standin: SendGridStandIn
) -> list[str]:
    wrong = []
    for lead, state in states.items():
        sent = {
            m.custom_args.get(IDEMPOTENCY_ARG)
            for m in standin.messages_with(lead_id=lead, category="touch")
        }
        if len(sent) != state.touches_sent:
            wrong.append(f"{lead}: {state.touches_sent} touches sent, SendGrid got {len(sent)}")
    return wrong


# --- the walk -------------------------------------------------------------------------------


@dataclass
class Walk:
    seed: int
    engine: LifeEngine
    standin: SendGridStandIn
    task_queue: str
    rng: random.Random = field(init=False)
    leads: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    slowest_catch_up: float = 0.0  # seconds the slowest check waited for visibility

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    @property
    def client(self) -> Client:
        return self.engine.client

    def handle(self, lead: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(workflow_id_for(lead))

    async def state(self, lead: str) -> LeadState:
        return await query_state(self.handle(lead))

    async def states(self) -> dict[str, LeadState]:
        found = await asyncio.gather(*(self.state(lead) for lead in self.leads))
        return dict(zip(self.leads, found, strict=True))

    # --- steps ---

    async def begin(self) -> None:
        for n in range(LEADS_PER_WALK):
            lead = f"life-{uuid.uuid4().hex[:8]}"
            region = self.rng.choice(REGIONS)
            self.leads.append(lead)
            self.log.append(f"start {lead} (lead {n}) in {region}")
            profile = LeadProfile(
                lead_id=lead, email=f"{lead}@corp.example", first_name=f"L{n}", region=region
            )
            await send_profile(self.client, profile, task_queue=self.task_queue)

    async def step(self) -> str:
        kind = self.rng.choices(list(STEP_KINDS), weights=list(STEP_KINDS.values()))[0]
        lead = self.rng.choice(self.leads)
        if kind == "owner action":  # a lead that has an owner, when there is one
            owned = [lead for lead, s in (await self.states()).items() if s.owner]
            lead = self.rng.choice(owned) if owned else lead
        number = self.leads.index(lead)
        if kind == "event":
            type_ = self.rng.choices(list(EVENT_TYPES), weights=list(EVENT_TYPES.values()))[0]
            event = LeadEvent(lead_id=lead, type=type_, event_id=uuid.uuid4().hex)
            await send_event(self.client, event, task_queue=self.task_queue)
            return f"lead {number}: event {type_}"
        if kind == "profile":
            return f"lead {number}: " + await self.update_profile(lead)
        if kind == "owner action":
            return f"lead {number}: " + await self.rep_acts(lead, by_owner=True)
        if kind == "other rep action":
            return f"lead {number}: " + await self.rep_acts(lead, by_owner=False)
        if kind == "wait past the SLA":
            return await self.wait_past_the_next_sla()
        pause = round(self.rng.uniform(0, SLA_SECONDS), 2)
        await self.engine.stop()
        await asyncio.sleep(pause)  # timers come due while nobody is there to run them
        await self.engine.start()
        return f"worker stopped for {pause:g} s and replaced"

    async def wait_past_the_next_sla(self) -> str:
        now = datetime.now(UTC)
        due = [
            s.handoff.sla_due_at
            for s in (await self.states()).values()
            if s.stage == "assigned" and s.handoff and s.handoff.sla_due_at
        ]
        if not due:  # nobody's clock runs: let the cadence timers fire a little
            await asyncio.sleep(1.0)
            return "waited 1 s (no SLA running)"
        wait = round(max(min(due) - now, timedelta(0)).total_seconds() + 0.3, 2)
        await asyncio.sleep(wait)
        return f"waited {wait:g} s (past the next SLA due)"

    async def update_profile(self, lead: str) -> str:
        change: dict[str, Any] = self.rng.choice(
            [
                {"title": self.rng.choice(["VP Sales", "Engineer", "Student", "Director"])},
                {"company_size": self.rng.choice([20, 800])},
                {"region": self.rng.choice(REGIONS)},
                {"email": None},
                {"email": f"{lead}.new@corp.example"},
            ]
        )
        await send_profile(
            self.client, LeadProfile(lead_id=lead, **change), task_queue=self.task_queue
        )
        return f"profile {change}"

    async def rep_acts(self, lead: str, by_owner: bool) -> str:
        before = await self.state(lead)
        reps = [r.id for r in self.engine.rules.routing.reps]
        if by_owner and before.owner:
            rep = before.owner
        else:
            rep = self.rng.choice([r for r in reps if r != before.owner])
        # Mostly what the stage allows (so leads move on), sometimes anything (refusals).
        allowed = [a for a in ACTIONS if rep_action_error(a, before.stage, rep, rep, True) is None]
        action = self.rng.choice(allowed if allowed and self.rng.random() < 0.7 else ACTIONS)
        request: RepAction
        if action == "reject":
            request = RejectRequest(rep=rep, reason="not now, maybe next quarter")
        elif action == "outcome":
            result = self.rng.choice(["won", "lost"])
            request = OutcomeRequest(rep=rep, result=result, amount=1000.0)
        else:
            request = RepAction(rep=rep)
        what = f"{action} by {rep} ({'owner' if rep == before.owner else 'not the owner'})"
        try:
            outcome = await act(self.client, lead, action, request)
        except LeadActionError as refused:
            after = await self.state(lead)
            refused_fairly(lead, action, rep, before, after, str(refused))
            nothing_changed_by(lead, rep, before, after)
            return f"{what}: refused"
        after = await self.state(lead)
        if rep != before.owner:
            took_over = any(t.rep == rep for t in after.assignments[len(before.assignments) :])
            assert took_over, (
                f"{lead}: {action} by {rep}, who does not own the lead (owner: {before.owner}), "
                f"was accepted: stage {before.stage} -> {outcome.stage}"
            )
        return f"{what}: {before.stage} -> {outcome.stage}"

    async def keep_histories(self, folder: Path) -> list[str]:
        """Save each lead's history for a failed walk (replay it, or read it in the UI) and
        return its failed workflow tasks (a query to such a lead times out instead of saying
        why)."""
        folder.mkdir(parents=True, exist_ok=True)
        failed_tasks = []
        for lead in self.leads:
            with contextlib.suppress(Exception):
                history = await self.handle(lead).fetch_history()
                (folder / f"{lead}.json").write_text(history.to_json())
                failed_tasks += [
                    f"{lead}: workflow task {e.event_id} failed: "
                    f"{e.workflow_task_failed_event_attributes.failure.message}"
                    for e in history.events
                    if e.HasField("workflow_task_failed_event_attributes")
                ]
        (folder / "walk.txt").write_text("\n".join(self.log) + "\n")
        return failed_tasks

    # --- invariants ---

    async def check(self) -> None:
        states = await self.states()
        rules = self.engine.rules
        for lead, state in states.items():
            never_reassigned_to_themself(lead, state)
            every_touch_accounted_for(lead, state, rules)
        no_key_sent_twice(self.standin)
        await self.eventually(self.visibility_matches, "visibility equals the state query")
        await self.eventually(
            self.outbox_matches, "every touch the lead counts as sent reached SendGrid once"
        )

    async def eventually(self, mismatches: Callable[[], Awaitable[list[str]]], what: str) -> None:
        began = asyncio.get_running_loop().time()
        deadline = began + SETTLED_WITHIN
        while wrong := await mismatches():
            self.slowest_catch_up = max(
                self.slowest_catch_up, asyncio.get_running_loop().time() - began
            )
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"{what} did not hold within {SETTLED_WITHIN:g} s:\n  " + "\n  ".join(wrong)
                )
            await asyncio.sleep(0.2)

    async def visibility_matches(self) -> list[str]:
        query = f'TaskQueue = "{self.task_queue}" AND ExecutionStatus = "Running"'
        visible = {
            wf.id: Visible(
                wf.typed_search_attributes.get(STAGE),
                wf.typed_search_attributes.get(OWNER),
                wf.typed_search_attributes.get(SLA_DUE),
            )
            async for wf in self.client.list_workflows(query)
        }
        states = await self.states()
        wrong = visibility_mismatches(states, visible)
        if wrong:
            return wrong
        # What an operator types: `temporal workflow list --query 'LeadStage = "won"'`.
        for stage, expected in Counter(s.stage for s in states.values()).items():
            counted = await self.client.count_workflows(f'{query} AND LeadStage = "{stage}"')
            if counted.count != expected:
                wrong.append(f"count of LeadStage = {stage!r} is {counted.count}, not {expected}")
        return wrong

    async def outbox_matches(self) -> list[str]:
        return touches_sent_match_the_outbox(await self.states(), self.standin)


def refused_fairly(
    lead: str,
    action: RepActionName,
    rep: str,
    before: LeadState,
    after: LeadState,
    error: str,
) -> None:
    """A refusal is right when the state before or after the attempt forbids the action (an SLA
    miss may move the lead on in between)."""
    reasons = [rep_action_error(action, s.stage, s.owner, rep, True) for s in (before, after)]
    assert any(reasons), (
        f"{lead}: {action} by {rep} (owner: {before.owner}, stage {before.stage}) refused: {error}"
    )


def nothing_changed_by(lead: str, rep: str, before: LeadState, after: LeadState) -> None:
    """A refused action leaves no trace; timers may still have moved the lead meanwhile."""
    new = after.timeline[len(before.timeline) :] if len(before.timeline) < 200 else []
    traces = [
        e
        for e in new
        if f" by {rep}:" in e.detail or (e.detail.startswith(f"{rep} ") and e.kind != "sla missed")
    ]
    assert not traces, f"{lead}: a refused action by {rep} changed the lead: {traces}"
    assert after.rejections == before.rejections and after.outcome == before.outcome, (
        f"{lead}: a refused action by {rep} changed rejections or the outcome"
    )
    if not new:
        ignore = {"ledger_flushes", "ledger_seq"}
        if before.handoff and after.handoff and before.handoff.missed_by != after.handoff.missed_by:
            ignore.add("handoff")  # an SLA miss half applied (waiting on the next rep's pick)
        was, now = before.model_dump(exclude=ignore), after.model_dump(exclude=ignore)
        changed = {k: (was[k], now[k]) for k in was if was[k] != now[k]}
        assert not changed, f"{lead}: a refused action by {rep} changed the state: {changed}"


async def live(seed: int, client: Client, tmp_path: Path) -> None:
    """One seeded walk on its own task queue, worker, SendGrid stand-in and database."""
    tmp_path.mkdir(parents=True)
    task_queue = f"life-{uuid.uuid4().hex[:8]}"
    config_dir = life_rules(tmp_path)
    with SendGridStandIn() as standin:
        options = WorkerOptions(
            config_dir=config_dir,
            templates_dir=TEST_TEMPLATES,
            database_url=f"sqlite:///{tmp_path / 'nurture.db'}",
            mailer=MailerSettings(api_key="SG.test-key", base_url=standin.url),
            signer=LinkSigner(secret=TEST_SECRET),
            crm=None,
            time_scale=TIME_SCALE,
            task_queue=task_queue,
        )
        engine = LifeEngine(client, options, RulesSource(config_dir, TEST_TEMPLATES, TIME_SCALE))
        walk = Walk(seed, engine, standin, task_queue)
        await engine.start()
        began = asyncio.get_running_loop().time()
        try:
            await walk.begin()
            await walk.check()
            for number in range(1, STEPS_PER_WALK + 1):
                try:
                    at = asyncio.get_running_loop().time() - began
                    walk.log.append(f"step {number} (at {at:.1f} s): " + await walk.step())
                    await walk.check()
                except Exception as err:
                    kept = ARTIFACTS / f"random-life-seed-{seed}"
                    failed_tasks = await walk.keep_histories(kept)
                    story = "\n".join([*failed_tasks, "the walk so far:", *walk.log])
                    raise AssertionError(
                        f"seed {seed}, step {number}: {err}\n{story}\n(histories in {kept})"
                    ) from err
        finally:
            print(f"seed {seed}:\n" + "\n".join(walk.log))
            print(f"seed {seed}: the slowest check waited {walk.slowest_catch_up:.1f} s")
            await engine.stop()


async def test_random_life_keeps_its_invariants(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Findings 1 and 2 (issue 13): visibility equals the state after every step; no lead is
    reassigned to its owner; touches are sent, held or skipped with a reason; no key twice;
    rep actions by non-owners are refused and change nothing.

    The walks run side by side (they mostly wait for clocks), each on its own task queue."""
    walks = [live(seed, dev_env.client, tmp_path / f"seed-{seed}") for seed in SEEDS]
    failed = [
        outcome
        for outcome in await asyncio.gather(*walks, return_exceptions=True)
        if isinstance(outcome, BaseException)
    ]
    if failed:
        others = "".join(f"\n\nalso: {str(f).splitlines()[0]}" for f in failed[1:])
        raise AssertionError(f"{failed[0]}{others}") from failed[0]
