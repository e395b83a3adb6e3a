"""``nurture simulate``: a realistic synthetic population driven through the running engine.

Leads of mixed segments and regions behave hot, warm or cold; reps act on what they are given:
most accept and close won or lost, some reject with a reason, and one rep is absent (never acts,
so the SLA escalates and reassigns). Seeded, so a run can be repeated.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from rich.progress import Progress
from temporalio.client import Client

from nurture.client.sales import LeadActionError, TemporalUnavailableError, act, read_state
from nurture.client.starting import send_event, send_profile
from nurture.contract.messages import LeadState, OutcomeRequest, RejectRequest, RepAction
from nurture.domain.leads import LeadEvent, LeadProfile
from nurture.domain.rules import Rules
from nurture.domain.scoring import qualifies_instantly
from nurture.runtime.fan_out import gather_bounded

log = structlog.get_logger(__name__)

FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Linus",
    "Margaret",
    "Ken",
    "Barbara",
    "Dennis",
    "Frances",
    "Edsger",
    "Radia",
    "Tim",
    "Hedy",
    "Guido",
    "Katherine",
    "Niklaus",
]
LAST = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Liskov",
    "Ritchie",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Berners-Lee",
    "Lamarr",
    "Rossum",
    "Johnson",
    "Wirth",
]
TITLES = [
    "VP Engineering",
    "Director of IT",
    "Head of Operations",
    "CTO",
    "IT Manager",
    "Software Engineer",
    "Analyst",
    "Student",
    "Marketing Manager",
    "Chief Financial Officer",
]
INDUSTRIES = ["software", "saas", "fintech", "healthcare", "manufacturing", "retail", "education"]
REGIONS = ["EMEA", "AMER", "APAC", "EMEA", "AMER"]
CAMPAIGNS = ["webinar-q4", "whitepaper-ai", "ppc-brand", "tradeshow-berlin", "organic"]
DOMAINS = ["corp.example", "bigco.example", "startup.example", "gmail.com", "rivalsoft.example"]
PAGES = [
    "/",
    "/product",
    "/pricing",
    "/blog/nurture-101",
    "/blog/scoring",
    "/careers",
    "/customers",
    "/docs",
]
REJECT_REASONS = [
    "no budget this year",
    "not the decision maker",
    "student / not a buyer",
    "already a customer of a competitor",
    "timing: revisit next quarter",
]


@dataclass
class SimulationSummary:
    leads: int = 0
    events: int = 0
    per_stage: Counter[str] = field(default_factory=Counter)
    temperature: Counter[str] = field(default_factory=Counter)
    handed_off: int = 0
    accepted: int = 0
    rejected: int = 0
    won: int = 0
    lost: int = 0
    won_amount: float = 0.0
    escalations: int = 0
    touches_sent: int = 0
    absent_reps: list[str] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)
    """Leads whose state the engine did not give within the patience of every reading: too
    busy to answer (a lead whose task a killed worker held, a timer storm). Counted, not fatal."""

    def as_json(self) -> dict[str, Any]:
        data = self.__dict__.copy()
        data["per_stage"] = dict(self.per_stage)
        data["temperature"] = dict(self.temperature)
        return data


def make_profile(rng: random.Random, index: int, seed: int) -> LeadProfile:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    domain = rng.choice(DOMAINS)
    return LeadProfile(
        lead_id=f"sim{seed}-{index:05d}",
        email=f"{first.lower()}.{last.lower().replace('-', '')}{index}@{domain}",
        first_name=first,
        last_name=last,
        company=f"{last} {rng.choice(['Labs', 'Systems', 'GmbH', 'Inc', 'Group'])}",
        title=rng.choice(TITLES),
        company_size=rng.choice([8, 40, 120, 300, 800, 2500, 12000]),
        industry=rng.choice(INDUSTRIES),
        region=rng.choice(REGIONS),
        budget=rng.choice([None, 2000, 15000, 80000]),
        timeframe=rng.choice(["0-3 months", "3-6 months", "6-12 months", "no plans"]),
        campaign=rng.choice(CAMPAIGNS),
    )


def make_events(
    rng: random.Random, lead: LeadProfile, now: datetime, time_scale: float = 1.0
) -> tuple[str, list[LeadEvent]]:
    """A lead's past behaviour, over the last weeks (divided by the engine's ``time_scale``,
    as its rule durations are: a lead decays up to each past event as it would have live)."""
    temperature = rng.choices(["hot", "warm", "cold"], weights=[25, 35, 40])[0]
    count = {"hot": rng.randint(8, 18), "warm": rng.randint(3, 8), "cold": rng.randint(0, 3)}[
        temperature
    ]
    start = now - timedelta(days=rng.randint(5, 30)) / time_scale
    events: list[LeadEvent] = []
    at = start
    for n in range(count):
        at += timedelta(hours=rng.randint(1, 60)) / time_scale
        at = min(at, now)
        if temperature == "hot":
            kind = rng.choices(
                [
                    "page_view",
                    "download",
                    "form_fill",
                    "email_click",
                    "webinar_attended",
                    "email_open",
                ],
                weights=[5, 3, 2, 3, 1, 3],
            )[0]
        else:
            kind = rng.choices(
                ["page_view", "email_open", "email_click", "download"], weights=[6, 4, 2, 1]
            )[0]
        url = f"https://nurture.example{rng.choice(PAGES)}" if kind == "page_view" else None
        events.append(
            LeadEvent(
                lead_id=lead.lead_id,
                type=kind,
                at=at,
                url=url,
                campaign=lead.campaign,
                event_id=f"{lead.lead_id}-e{n}",
            )
        )
    if temperature == "hot" and rng.random() < 0.3:
        events.append(
            LeadEvent(
                lead_id=lead.lead_id, type="requested_call", at=now, event_id=f"{lead.lead_id}-call"
            )
        )
    return temperature, events


async def simulate(
    client: Client,
    rules: Rules,
    leads: int,
    seed: int,
    settle_seconds: float,
    show_progress: bool,
    task_queue: str,
    time_scale: float = 1.0,
) -> SimulationSummary:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    summary = SimulationSummary(leads=leads)
    reps = [r.id for r in rules.routing.reps if r.id != rules.routing.fallback_owner]
    absent = rng.choice(reps) if reps else None
    summary.absent_reps = [absent] if absent else []
    population = [make_profile(rng, i, seed) for i in range(leads)]
    plans = [make_events(rng, lead, now, time_scale) for lead in population]
    gate = asyncio.Semaphore(50)

    async def feed(lead: LeadProfile, events: list[LeadEvent]) -> None:
        async with gate:
            await send_profile(client, lead, task_queue=task_queue)
            for event in events:
                ready = qualifies_instantly(event, rules.scoring)
                await send_event(client, event, task_queue, sales_ready=ready)

    with Progress(disable=not show_progress) as progress:
        bar = progress.add_task("leads and behaviour", total=leads)
        tasks = []
        for lead, (temperature, events) in zip(population, plans, strict=True):
            summary.temperature[temperature] += 1
            summary.events += len(events)
            task = asyncio.create_task(feed(lead, events))
            task.add_done_callback(lambda _: progress.update(bar, advance=1))
            tasks.append(task)
        await asyncio.gather(*tasks)

        ids = [lead.lead_id for lead in population]
        await settle(
            client,
            {p.lead_id: len(e) for p, (_, e) in zip(population, plans, strict=True)},
            settle_seconds,
        )
        acting = progress.add_task("sales reps acting", total=leads)
        decisions = random.Random(seed + 1)

        async def rep_acts(lead: tuple[str, RepDecision]) -> None:
            await play_rep(client, *lead, absent, summary)
            progress.update(acting, advance=1)

        drawn = [(i, RepDecision.draw(decisions)) for i in ids]  # in order, before anyone acts
        await gather_bounded(REPS_IN_FLIGHT, rep_acts, drawn)
        final = await read_states(client, ids)
        summary.unread = final.unread
        for state in final.states:
            summary.per_stage[state.stage] += 1
            summary.touches_sent += state.touches_sent
            summary.escalations += len(state.handoff.escalations) if state.handoff else 0
            summary.handed_off += 1 if state.handoffs else 0
    return summary


QUERIES_IN_FLIGHT = 20  # the dev server refuses a namespace's excess concurrent requests
REPS_IN_FLIGHT = 10
"""Reps acting at once: a sales team works its leads side by side; one after another, a busy
engine (an SLA storm at ``--time-scale 3600``) took about 5 s a lead, hours for thousands."""


@dataclass(frozen=True)
class RepDecision:
    """What the rep given a lead will do with it, drawn before anyone acts so that a seed
    gives the same choices whatever order the reps finish in."""

    roll: float
    reason: str
    close: float
    amount: float

    @classmethod
    def draw(cls, rng: random.Random) -> RepDecision:
        return cls(
            roll=rng.random(),
            reason=rng.choice(REJECT_REASONS),
            close=rng.random(),
            amount=float(rng.choice([5000, 12000, 30000, 75000])),
        )


@dataclass(frozen=True)
class Patience:
    """How long one lead's state is waited for: ``attempts`` queries of up to ``timeout``
    each, with growing pauses between. A lead no worker can run now (its task held by a
    killed worker, every poller busy) costs at most this, then counts as unread."""

    attempts: int = 8
    timeout: timedelta = timedelta(seconds=10)

    def pause(self, attempt: int) -> float:
        return min(0.5 * 2**attempt, 8.0)


@dataclass(frozen=True)
class StateReading:
    """The states the engine gave, and the leads it was too busy to answer for."""

    states: list[LeadState]
    unread: list[str]


async def read_state_patiently(
    client: Client, lead_id: str, patience: Patience = Patience()
) -> LeadState | None:
    """The lead's state, asking again when a busy server timed out or refused the query
    (nothing was decided then); None when it never answered: one lead the engine cannot
    read now must not end the whole simulation."""
    for attempt in range(patience.attempts):
        try:
            return await read_state(client, lead_id, patience.timeout)
        except TemporalUnavailableError as err:
            if attempt < patience.attempts - 1:
                await asyncio.sleep(patience.pause(attempt))
            else:  # what Temporal last said tells a busy engine from a stuck lead
                log.warning(
                    "lead not read", lead_id=lead_id, attempts=patience.attempts, error=str(err)
                )
    return None


async def read_states(
    client: Client, lead_ids: list[str], patience: Patience = Patience()
) -> StateReading:
    answers = await gather_bounded(
        QUERIES_IN_FLIGHT, lambda i: read_state_patiently(client, i, patience), lead_ids
    )
    return StateReading(
        states=[a for a in answers if a is not None],
        unread=[i for i, a in zip(lead_ids, answers, strict=True) if a is None],
    )


async def settle(
    client: Client, expected: dict[str, int], seconds: float, patience: Patience = Patience()
) -> None:
    """Wait until every lead has applied the events it was sent (or ``seconds`` pass); a lead
    the engine did not answer for is still pending."""
    deadline = asyncio.get_running_loop().time() + seconds
    pending = dict(expected)
    while pending and asyncio.get_running_loop().time() < deadline:
        reading = await read_states(client, list(pending), patience)
        pending = {
            s.lead_id: pending[s.lead_id]
            for s in reading.states
            if s.events_applied + s.duplicates_ignored < pending[s.lead_id]
            or s.profile.email is None
        } | {lead_id: pending[lead_id] for lead_id in reading.unread}
        if pending:
            await asyncio.sleep(0.3)


async def play_rep(
    client: Client,
    lead_id: str,
    decision: RepDecision,
    absent: str | None,
    summary: SimulationSummary,
) -> None:
    state = await read_state_patiently(client, lead_id)
    if state is None:  # counted as unread by the final reading if it still does not answer
        return
    if state.stage != "assigned" or state.owner is None or state.owner == absent:
        return
    rep = state.owner
    try:
        if decision.roll < 0.25:
            await act(client, lead_id, "reject", RejectRequest(rep=rep, reason=decision.reason))
            summary.rejected += 1
            return
        if decision.roll < 0.85:
            await act(client, lead_id, "accept", RepAction(rep=rep))
            summary.accepted += 1
            if decision.close < 0.35:
                await act(
                    client,
                    lead_id,
                    "outcome",
                    OutcomeRequest(rep=rep, result="won", amount=decision.amount),
                )
                summary.won += 1
                summary.won_amount += decision.amount
            elif decision.close < 0.6:
                await act(client, lead_id, "outcome", OutcomeRequest(rep=rep, result="lost"))
                summary.lost += 1
    except LeadActionError:
        # The SLA may have reassigned the lead between our read and our action: fine.
        return
