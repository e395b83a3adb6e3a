"""A deterministic synthetic population for the read model: leads, what they did and what sales
did with them, as the ``FactBatch`` objects lead workflows report (``nurture.contract.ledger``).

Only the inputs are synthetic. Each lead is the lead's own core (``nurture/core``) under the
rules in ``config/``, driven as its workflow drives it (``nurture/core/simulation.py``): it is
sent a profile and behaviour events at their times, time passes, reps act on it, and its rows
are the facts the core reported, written as the workflow writes them (``facts.batch`` with the
lead's row). Scores, handoffs, SLA turns, touches, keys and versions are the core's decisions.

Same ``leads``, ``events`` and ``seed`` give the same rows, byte for byte. Leads are created over
26 weeks (2026-05-18 to 2026-11-16, slightly more of them later on), each with a skewed number of
events (a few leads do a lot, most do little) of a browsing or a buying kind; the rules score
them and hand a lead off when its score crosses the threshold or at once when it asks for a
call. Reps then answer inside the SLA or late or never (a miss reassigns the lead as routing
says), accept or reject (more often at low scores and poor fit, with a reason: the lead is
recycled), and accepted leads are won (with an amount) or lost some weeks later. Meanwhile each
lead gets its cadence's touches (emails, call tasks that inside sales mostly do) until it is
handed off, suppressed (it unsubscribes or bounces, or never opted in: its address is on the
provider's suppression list) or its cadence ends. Campaigns bring leads in, appear on some
events, and have monthly costs.

Everything stays before ``END``; reports are asked about it as of ``NOW``. Generating costs
≈2.4 ms of CPU a lead, the core's work (``bench/README.md``); :meth:`Population.chunks` spreads
it over processes.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import multiprocessing
import random
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from nurture.config.config_loader import DEFAULT_CONFIG_DIR, load_rules
from nurture.contract.ledger import AssignmentFact, FactBatch, HandoffFact, TouchFact
from nurture.contract.messages import (
    EmailRequest,
    EmailResult,
    OutcomeRequest,
    RejectRequest,
    RepAction,
    TaskCompletion,
)
from nurture.core.base import Run
from nurture.core.commands import Failed
from nurture.core.simulation import SimulatedLead, World
from nurture.domain.leads import LeadEvent, LeadProfile
from nurture.domain.tasks import OUTCOMES
from nurture.store.read_model import Campaign, CampaignCost

START = datetime(2026, 5, 18, tzinfo=UTC)
END = START + timedelta(weeks=26)  # 2026-11-16: nothing happens after this
NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)  # when the reports are asked
SHIPPED = load_rules(DEFAULT_CONFIG_DIR)
"""The rules in ``config/``, which every lead of the population runs under."""
PIECE = 250  # leads a worker process makes at a time


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    channel: str
    monthly_cost: float
    share: float  # of the leads captured
    quality: float  # how engaged its leads are (1 = average)
    capture: str  # the event type that captures a lead
    consent: float = 0.82  # share of its leads that opted in to marketing email
    window: tuple[date, date] | None = None  # when it captured leads (None: all along)


CAMPAIGNS: tuple[CampaignSpec, ...] = (
    CampaignSpec("search-brand", "paid_search", 14_000, 0.12, 1.35, "form_fill"),
    CampaignSpec("search-generic", "paid_search", 26_000, 0.15, 0.8, "form_fill"),
    CampaignSpec("linkedin-abm", "paid_social", 21_000, 0.09, 1.2, "download"),
    CampaignSpec("webinar-series", "webinar", 7_500, 0.10, 1.25, "webinar_registered"),
    CampaignSpec("ebook-state-of-ops", "content", 4_500, 0.13, 0.85, "whitepaper_download"),
    CampaignSpec(
        "trade-show-2026",
        "events",
        0,
        0.04,
        1.1,
        "form_fill",
        0.55,
        (date(2026, 9, 7), date(2026, 10, 5)),
    ),
    CampaignSpec("partner-referrals", "referral", 2_500, 0.05, 1.6, "form_fill", 0.35),
    CampaignSpec("review-sites", "review_site", 6_000, 0.08, 1.0, "download"),
)
TRADE_SHOW_COST = (date(2026, 9, 1), date(2026, 10, 1), 62_000.0)
ORGANIC_SHARE = 1 - sum(c.share for c in CAMPAIGNS)  # no campaign: organic, direct
ORGANIC_CONSENT = 0.7
_CAMPAIGN_NAMES = [c.name for c in CAMPAIGNS]
_CAMPAIGN_CUM = list(itertools.accumulate(c.share for c in CAMPAIGNS))

# What leads do (the rules score it): type -> (weight for a browsing lead, weight for a buying
# lead, the page it happens on)
EVENT_TYPES: dict[str, tuple[float, float, str | None]] = {
    "page_view": (34, 20, "/product"),
    "blog_visit": (14, 7, "/blog/"),
    "email_open": (20, 11, None),
    "email_click": (9, 10, None),
    "pricing_page": (2.2, 9, "/pricing"),
    "download": (3.5, 7, "/resources/"),
    "whitepaper_download": (1.3, 4, "/resources/research-"),
    "webinar_registered": (1.4, 3, None),
    "webinar_attended": (0.6, 2.5, None),
    "form_fill": (0.9, 3, "/contact"),
    "trial_signup": (0.15, 1.5, "/trial"),
    "demo_request": (0.08, 1.2, "/demo"),
    "careers_page": (1.3, 0.2, "/careers"),
    "unsubscribe": (0.35, 0.04, None),
    "bounce": (0.15, 0.04, None),
    "requested_call": (0.012, 0.3, "/contact-sales"),
    "contact_sales": (0.008, 0.2, "/contact-sales"),
}
_TYPES = list(EVENT_TYPES)
_BROWSING = list(itertools.accumulate(v[0] for v in EVENT_TYPES.values()))
_BUYING = list(itertools.accumulate(v[1] for v in EVENT_TYPES.values()))
PAGES = ("/product", "/features", "/integrations", "/customers", "/security", "/about", "/")
PRICING_LINK = 0.12  # share of email clicks on the pricing link

# region: (weight, {country: time zones})
REGIONS: dict[str, tuple[float, dict[str, tuple[str, ...]]]] = {
    "AMER": (
        0.5,
        {
            "US": ("America/New_York", "America/Chicago", "America/Los_Angeles"),
            "CA": ("America/Toronto",),
            "BR": ("America/Sao_Paulo",),
            "MX": ("America/Mexico_City",),
        },
    ),
    "EMEA": (
        0.35,
        {
            "GB": ("Europe/London",),
            "DE": ("Europe/Berlin",),
            "FR": ("Europe/Paris",),
            "NL": ("Europe/Amsterdam",),
            "ES": ("Europe/Madrid",),
            "SE": ("Europe/Stockholm",),
            "IT": ("Europe/Rome",),
        },
    ),
    "APAC": (
        0.15,
        {
            "AU": ("Australia/Sydney",),
            "SG": ("Asia/Singapore",),
            "JP": ("Asia/Tokyo",),
            "IN": ("Asia/Kolkata",),
        },
    ),
}
COUNTRY_WEIGHTS = {"US": 3.0}  # the rest 1 each
INDUSTRIES = {
    "software": 20,
    "saas": 12,
    "fintech": 8,
    "healthcare": 10,
    "pharma": 4,
    "biotech": 3,
    "manufacturing": 10,
    "retail": 10,
    "education": 8,
    "government": 5,
    "media": 5,
    "logistics": 5,
}
TITLES = {
    "VP Marketing": 4,
    "Director of Operations": 6,
    "Head of Revenue Operations": 4,
    "CTO": 2,
    "Marketing Manager": 14,
    "Operations Manager": 12,
    "Sales Manager": 8,
    "Analyst": 14,
    "Engineer": 12,
    "Consultant": 8,
    "Founder": 5,
    "Student": 3,
    "Marketing Intern": 2,
}
JOB_SEEKERS = frozenset({"Student", "Marketing Intern"})  # sales turns them away
FIRST = ("Ada", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jon", "Kira")
LAST = ("Lovelace", "Okoro", "Schmidt", "Tanaka", "Rossi", "Silva", "Novak", "Berg", "Khan")
FREE_MAIL = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com")
COMPETITORS = ("competitor.example", "rivalsoft.example")
TIMEFRAMES = (("0-3 months", 0.12), ("3-6 months", 0.18), ("6-12 months", 0.3), ("", 0.4))
PROVIDER_ERRORS = 0.015  # share of touch emails the provider fails for good
# what SendGrid then says about each touch email sent (its Event Webhook): shares of emails
BOUNCED, MACHINE_OPENED, OPENED, CLICKED, SPAM = 0.02, 0.22, 0.24, 0.045, 0.0005

# what reps do
IN_TIME, LATE = 0.8, 0.14  # of turns answered inside the SLA, after it (the rest: never)
ACCEPTED = 0.7  # of answers that are not rejections: "accepted" (the rest "contacted")
REJECT_REASONS = (
    ("no budget", 3.0),
    ("not a decision maker", 3.0),
    ("bad timing: next fiscal year", 2.5),
    ("already a customer", 0.8),
    ("bad contact data", 1.5),
    ("duplicate of an open opportunity", 0.7),
    ("company too small", 1.2),
)
GRADE_REJECTS = {"A": -0.08, "B": -0.03, "C": 0.03, "D": 0.12}  # more rejects at a poor fit
GRADE_WINS = {"A": 0.46, "B": 0.38, "C": 0.28, "D": 0.16}
DEAL_SIZE = {"enterprise": 40_000.0}  # a typical won amount (others: SMB_DEAL)
SMB_DEAL = 9_000.0
TASKS_DONE = 0.7  # of inside-sales tasks somebody does
CALL_OUTCOMES = {
    "connected": 3.0,
    "meeting_booked": 0.6,
    "left_voicemail": 3.0,
    "no_answer": 3.0,
    "wrong_number": 0.4,
    "not_interested": 0.6,
}
INSIDE_SALES = sorted({rep for rule in SHIPPED.routing.rules for rep in rule.pool})


def _pick(rng: random.Random, weighted: Mapping[str, float] | Sequence[tuple[str, float]]) -> str:
    items = list(weighted.items()) if isinstance(weighted, Mapping) else list(weighted)
    return rng.choices([name for name, _ in items], [weight for _, weight in items])[0]


@dataclass
class Stats:
    """What was generated, for the benchmark's report (rows as the read model keeps them:
    the newest version of a handoff or an SLA turn)."""

    leads: int = 0
    rows: Counter[str] = field(default_factory=Counter)
    handed_off_leads: int = 0
    instant_handoffs: int = 0
    rejected: int = 0
    won: int = 0
    lost: int = 0
    sla: Counter[str] = field(default_factory=Counter)

    def add(self, batch: FactBatch) -> None:
        self.leads += 1
        self.rows["lead"] += 1
        newest: dict[str, HandoffFact | AssignmentFact] = {}
        for fact in batch.facts:
            if isinstance(fact, HandoffFact | AssignmentFact):
                held = newest.get(fact.key)
                if held is None or held.version < fact.version:
                    newest[fact.key] = fact
            else:
                self.rows[_TABLE[fact.kind]] += 1
        for fact in newest.values():
            self.rows[_TABLE[fact.kind]] += 1
            if isinstance(fact, HandoffFact):
                self.instant_handoffs += fact.instant
                self.rejected += fact.status == "rejected"
                self.won += fact.status == "won"
                self.lost += fact.status == "lost"
            else:
                self.sla[_sla_kind(fact)] += 1
        self.handed_off_leads += any(isinstance(f, HandoffFact) for f in newest.values())

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


_TABLE = {
    "event": "leadevent",
    "score": "scorechange",
    "transition": "stagetransition",
    "handoff": "handoff",
    "assignment": "salesassignment",
    "touch": "touch",
    "outcome": "outcome",
}


def _sla_kind(a: AssignmentFact) -> str:
    if a.reassigned_to:
        return "reassigned"
    if a.responded_at is None:
        return "missed" if a.misses else "open"
    return "late" if a.misses else "in_time"


class Population:
    """``leads`` leads with ``events`` events in all, from ``seed``."""

    def __init__(self, leads: int, events: int, seed: int = 20261124) -> None:
        if leads < 1 or events < leads:
            raise ValueError("need at least one lead and at least one event per lead")
        self.leads, self.events, self.seed = leads, events, seed
        rng = random.Random(seed)
        span = (END - START).total_seconds()
        # more leads later on (growth), a little less at weekends
        created: list[datetime] = []
        while len(created) < leads:
            at = START + timedelta(seconds=span * rng.random() ** 0.85)
            if at.weekday() < 5 or rng.random() < 0.4:
                created.append(at)
        created.sort()
        self.created = created
        # events per lead: lognormal (skewed), fewer for leads created near the end, exact total
        weights = []
        for at in created:
            room = min(1.0, (END - at) / timedelta(days=75))
            weights.append(rng.lognormvariate(0, 0.95) * (0.25 + 0.75 * room))
        spare = events - leads
        total = sum(weights)
        raw = [w * spare / total for w in weights]
        counts = [1 + int(r) for r in raw]
        short = events - sum(counts)
        by_fraction = sorted(range(leads), key=lambda i: raw[i] - int(raw[i]), reverse=True)
        for i in by_fraction[:short]:
            counts[i] += 1
        self.event_counts = counts

    def campaigns(self) -> list[Campaign]:
        return [
            Campaign(
                name=c.name,
                channel=c.channel,
                description=f"{c.channel} campaign",
                created_at=START - timedelta(days=30),
            )
            for c in CAMPAIGNS
        ]

    def costs(self) -> list[CampaignCost]:
        """Monthly costs (±15 % from month to month) from May to November; the trade show is
        one cost for September."""
        rng = random.Random(self.seed + 1)
        rows = []
        months = [date(2026, m, 1) for m in range(5, 13)]
        for spec in CAMPAIGNS:
            if spec.name == "trade-show-2026":
                start, end, amount = TRADE_SHOW_COST
                rows.append(
                    CampaignCost(
                        campaign=spec.name,
                        period_start=start,
                        period_end=end,
                        amount=amount,
                        note="booth, travel, sponsorship",
                    )
                )
                continue
            for start, end in itertools.pairwise(months):
                amount = round(spec.monthly_cost * rng.uniform(0.85, 1.15), 2)
                rows.append(
                    CampaignCost(
                        campaign=spec.name,
                        period_start=start,
                        period_end=end,
                        amount=amount,
                        note="monthly spend",
                    )
                )
        return rows

    def batches(self, start: int = 0, stop: int | None = None) -> Iterator[FactBatch]:
        for i in range(start, self.leads if stop is None else min(stop, self.leads)):
            yield _Lead(self, i).run()

    def chunks(self, size: int, workers: int = 1) -> Iterator[list[FactBatch]]:
        """Every lead's batch in order, ``size`` leads at a time, made by ``workers``
        processes: the same rows whatever their number (a lead depends only on the seed and
        its place)."""
        made = self.batches() if workers <= 1 else self._made_by(workers)
        chunk: list[FactBatch] = []
        for batch in made:
            chunk.append(batch)
            if len(chunk) == size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _made_by(self, workers: int) -> Iterator[FactBatch]:
        """Every lead's batch in order, made by worker processes ``PIECE`` leads at a time,
        a few pieces ahead and no more (the population is never held in memory whole)."""
        with ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),  # not fork: the caller has threads
            initializer=_start_worker,
            initargs=(self.leads, self.events, self.seed),
        ) as pool:
            ahead: deque[Future[list[FactBatch]]] = deque()
            for first in range(0, self.leads, PIECE):
                ahead.append(pool.submit(_make, first, first + PIECE))
                if len(ahead) > 2 * workers:
                    yield from ahead.popleft().result()
            while ahead:
                yield from ahead.popleft().result()


_WORKERS_POPULATION: Population | None = None


def _start_worker(leads: int, events: int, seed: int) -> None:
    global _WORKERS_POPULATION
    _WORKERS_POPULATION = Population(leads, events, seed)


def _make(start: int, stop: int) -> list[FactBatch]:
    assert _WORKERS_POPULATION is not None
    return list(_WORKERS_POPULATION.batches(start, stop))


# --- one lead: who it is, what it does, what sales does with it --------------------------------


@dataclass(frozen=True)
class _Person:
    """Who the lead is, beyond its profile: what sales and the lead's own behaviour follow."""

    campaign: CampaignSpec | None
    competitor: bool
    job_seeker: bool
    opted_in: bool


def _campaign(rng: random.Random, day: date) -> CampaignSpec | None:
    while True:
        u = rng.random()
        if u < ORGANIC_SHARE:
            return None
        u -= ORGANIC_SHARE
        for spec in CAMPAIGNS:
            if u < spec.share:
                break
            u -= spec.share
        if spec.window is None or spec.window[0] <= day < spec.window[1]:
            return spec


def _person(
    rng: random.Random, i: int, lead_id: str, created: datetime
) -> tuple[LeadProfile, _Person]:
    region = _pick(rng, {r: w for r, (w, _) in REGIONS.items()})
    zones = REGIONS[region][1]
    country = _pick(rng, {c: COUNTRY_WEIGHTS.get(c, 1.0) for c in zones})
    title = _pick(rng, TITLES)
    size = max(1, int(rng.lognormvariate(math.log(150), 1.4)))
    spec = _campaign(rng, created.date())
    first, last = rng.choice(FIRST), rng.choice(LAST)
    u = rng.random()
    if u < 0.004:
        domain = rng.choice(COMPETITORS)
    elif u < 0.15:
        domain = rng.choice(FREE_MAIL)
    else:
        domain = f"{last.lower()}{i}.example"
    timeframe = _pick(rng, TIMEFRAMES)
    profile = LeadProfile(
        lead_id=lead_id,
        email=f"{first.lower()}.{last.lower()}.{i}@{domain}",
        first_name=first,
        last_name=last,
        company=f"{last} {rng.choice(('Labs', 'Group', 'Systems', 'GmbH', 'Inc'))} {i}",
        title=title,
        company_size=size,
        industry=_pick(rng, INDUSTRIES),
        region=region,
        country=country,
        budget=rng.choice((25_000.0, 60_000.0)) if rng.random() < 0.4 else None,
        timeframe=timeframe or None,
        campaign=spec.name if spec else None,
        timezone=rng.choice(zones[country]) if rng.random() < 0.7 else None,
        phone=f"+1 555 01{i % 100:02d}" if rng.random() < 0.75 else None,
    )
    person = _Person(
        campaign=spec,
        competitor=domain in COMPETITORS,
        job_seeker=title in JOB_SEEKERS,
        opted_in=rng.random() < (spec.consent if spec else ORGANIC_CONSENT),
    )
    return profile, person


class _Provider(World):
    """The email provider and the rest of the world, answering as in production: now and
    then an email fails for good."""

    def __init__(self, rng: random.Random, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rng = rng

    def send(self, request: EmailRequest, lead: SimulatedLead) -> EmailResult | Failed:
        if request.category == "touch" and self.rng.random() < PROVIDER_ERRORS:
            return Failed("provider error 503")
        return super().send(request, lead)


class _Lead:
    """One lead of the population, run through the core up to ``END``: its profile and events
    arrive at their times, reps answer its SLA turns, inside sales does its tasks."""

    def __init__(self, population: Population, i: int) -> None:
        self.rng = rng = random.Random(population.seed * 1_000_003 + i)
        self.lead_id = lead_id = f"L{i:07d}"
        run_id = f"{rng.getrandbits(48):012x}"
        created = population.created[i]
        self.profile, self.person = _person(rng, i, lead_id, created)
        world = _Provider(
            rng,
            rules=SHIPPED,
            first_turn=i,
            suppressed=set() if self.person.opted_in else {self.profile.email or ""},
        )
        self.lead = SimulatedLead(
            lead_id, created, world, run=Run(f"lead-{lead_id}", run_id, run_id), undoable=False
        )
        self.lead.signal(self.profile)
        # The chance that an event of theirs is of the buying kind: higher from a good
        # campaign, higher when they fit well (as the rules see them).
        quality = self.person.campaign.quality if self.person.campaign else 1.0
        keen = 1.4 if self.lead.state.score.fit_points > 25 else 1.0
        self.buying = min(0.85, rng.betavariate(1.1, 7) * quality * keen)
        self.events = self._events(created, population.event_counts[i])
        self.next_event, self.last_event = 0, len(self.events)
        # what reps and inside sales will do, in time order: (at, order, what, to whom)
        self.agenda: list[tuple[datetime, int, Callable[[str], None], str]] = []
        self.planned = itertools.count()
        self.turns_seen = 0
        self.last_task = ""

    def run(self) -> FactBatch:
        lead = self.lead
        while True:
            at = END
            if self.next_event < self.last_event:
                at = min(at, self.events[self.next_event][0])
            if self.agenda:
                at = min(at, self.agenda[0][0])
            due = lead.next_due()
            if due is not None and due < at:
                lead.step_to(due)
            else:
                lead.step_to(at)
                if at >= END:
                    return lead.written()
                if self.next_event < self.last_event and self.events[self.next_event][0] == at:
                    lead.signal(self.events[self.next_event][1])
                    self.next_event += 1
                else:
                    _, _, what, whom = heapq.heappop(self.agenda)
                    what(whom)
            self._watch()

    def _plan(self, at: datetime, what: Callable[[str], None], whom: str) -> None:
        if at < END:
            heapq.heappush(self.agenda, (at, next(self.planned), what, whom))

    # --- what the lead does -------------------------------------------------------------

    def _events(self, created: datetime, n: int) -> list[tuple[datetime, LeadEvent]]:
        """(when it reaches the lead, the event): skewed in time, bursty, in arrival order."""
        rng = self.rng
        room = (END - created).total_seconds() - 200
        life = min(room, rng.lognormvariate(math.log(40 * 86400), 0.8))
        life = max(life, min(room, 3600.0))
        bursts = [rng.uniform(0, life) for _ in range(1 + n // 6)]
        offsets = [rng.uniform(1, 90)]
        for _ in range(n - 1):
            if rng.random() < 0.6:
                offset = rng.choice(bursts) + rng.gauss(0, 2 * 86400)
            else:
                offset = rng.uniform(0, life)
            offsets.append(min(max(offset, 30.0), room))
        offsets.sort()
        events = []
        for n_event, offset in enumerate(offsets):
            at = created + timedelta(seconds=offset)
            received = at + timedelta(seconds=rng.uniform(0.2, 90))
            events.append((received, self._event(at, first=n_event == 0)))
        events.sort(key=lambda arrival: arrival[0])
        return events

    def _event(self, at: datetime, first: bool) -> LeadEvent:
        rng, person = self.rng, self.person
        if first:
            spec = person.campaign
            kind = spec.capture if spec else rng.choice(("form_fill", "download"))
        else:
            table = _BUYING if rng.random() < self.buying else _BROWSING
            kind = _TYPES[bisect.bisect(table, rng.random() * table[-1])]
        path = EVENT_TYPES[kind][2]
        if kind == "page_view":
            path = rng.choice(PAGES)
        elif kind == "email_click" and rng.random() < PRICING_LINK:
            path = "/pricing"
        url = None
        if path is not None:
            url = f"https://nurture.example{path}"
            if path.endswith(("/", "-")) and path != "/":
                url += f"{rng.randint(1, 40)}"
        campaign = person.campaign.name if person.campaign else None
        if not first and (campaign is None or rng.random() < 0.7):
            campaign = None
            if rng.random() < 0.3:
                campaign = rng.choices(_CAMPAIGN_NAMES, cum_weights=_CAMPAIGN_CUM)[0]
        return LeadEvent(lead_id=self.lead_id, type=kind, at=at, url=url, campaign=campaign)

    # --- what sales does ----------------------------------------------------------------

    def _watch(self) -> None:
        """Plan how reps answer new SLA turns and whether inside sales does a new task."""
        state, rng = self.lead.state, self.rng
        for turn in state.assignments[self.turns_seen :]:
            due = turn.due_at or turn.at
            u = rng.random()
            if u < IN_TIME:  # mostly quickly
                quickly = timedelta(hours=rng.expovariate(1 / 1.1) + 0.03)
                self._plan(turn.at + min(quickly, (due - turn.at) * 0.99), self._answer, turn.rep)
            elif u < IN_TIME + LATE:
                self._plan(due + timedelta(hours=rng.expovariate(1 / 10)), self._answer, turn.rep)
        self.turns_seen = len(state.assignments)
        task = state.tasks[-1] if state.tasks else None
        if task is not None and task.key != self.last_task:
            self.last_task = task.key
            if task.status == "open" and rng.random() < TASKS_DONE:
                now = self.lead.clock
                self._plan(
                    now + (task.due_at - now) * rng.uniform(0.02, 1.05), self._do_task, task.key
                )

    def _answer(self, rep: str) -> None:
        """The rep answers their turn, if the lead is still theirs: reject it (more often a
        poor fit, a low score, a competitor or a job seeker) or accept or contact it."""
        lead, rng, person = self.lead, self.rng, self.person
        core, state = lead.core, lead.state
        if core.rep_action_error("accept", rep) or state.handoff is None:
            return  # reassigned meanwhile, or already answered
        story = state.handoff.story
        p = 0.55 - (min(max(story.score, 60), 150) - 60) * 0.47 / 90
        p += GRADE_REJECTS.get(state.grade, 0.0)
        if story.qualified_by.startswith("instant:"):
            p -= 0.1
        if person.competitor or person.job_seeker:
            p += 0.4
        if rng.random() < min(0.9, max(0.02, p)):
            if person.competitor:
                reason = "competitor"
            elif person.job_seeker:
                reason = "student / job seeker"
            else:
                reason = _pick(rng, REJECT_REASONS)
            rejection = RejectRequest(rep=rep, reason=reason)
            lead.act(None, lambda: core.reject(rejection), rejection)
            return
        action = RepAction(rep=rep)
        if rng.random() < ACCEPTED:
            lead.act(None, lambda: core.contacted(action, "accepted"), action)
        else:
            lead.act(None, lambda: core.contacted(action, "contacted"), action)
        self._plan(lead.clock + timedelta(days=rng.gammavariate(2.0, 12.0)), self._close, rep)

    def _close(self, rep: str) -> None:
        """Won or lost, weeks later (nurtured leads close a little more, a little bigger),
        if the lead is still the rep's to close."""
        lead, rng = self.lead, self.rng
        state = lead.state
        if lead.core.rep_action_error("outcome", rep):
            return
        nurtured = state.touches_sent > 0
        won = rng.random() < GRADE_WINS.get(state.grade, 0.2) + 0.06 * nurtured
        scale = DEAL_SIZE.get(state.segment or "", SMB_DEAL) * (1.12 if nurtured else 1)
        amount = round(rng.lognormvariate(math.log(scale), 0.6), -2)
        closing = OutcomeRequest(
            rep=rep,
            result="won" if won else "lost",
            amount=amount if won or rng.random() < 0.3 else None,
        )
        lead.act(None, lambda: lead.core.close(closing), closing)

    def _do_task(self, key: str) -> None:
        """Inside sales records a task's outcome, which reaches the lead as one of its
        events (it takes the place of the lead's last one: the events add up to the total)."""
        lead, rng = self.lead, self.rng
        task = lead.state.task(key)
        if task is None or self.last_event <= self.next_event:
            return
        outcomes = OUTCOMES[task.channel]
        weights = [CALL_OUTCOMES.get(outcome, 1.0) for outcome in outcomes]
        done = TaskCompletion(
            rep=rng.choice(INSIDE_SALES),
            task_key=key,
            outcome=rng.choices(outcomes, weights)[0],
        )
        if lead.act(
            lead.core.task_completion_error(done), lambda: lead.core.complete_task(done), done
        ):
            self.last_event -= 1


def provider_events(batch: FactBatch) -> list[dict[str, Any]]:
    """The ``webhookevent`` rows SendGrid's Event Webhook leaves for the touch emails of
    ``batch`` (delivered or bounced; opens by people and by privacy proxies, some repeated;
    clicks; a rare spam report), as the webhook classifies them. The same touch gives the same
    rows in every run (drawn from its key)."""
    rows: list[dict[str, Any]] = []
    for fact in batch.facts:
        if not isinstance(fact, TouchFact) or fact.status != "sent" or fact.channel != "email":
            continue
        rng = random.Random(fact.key)
        kinds: list[tuple[str, str | None]]
        if rng.random() < BOUNCED:
            kinds = [("bounce", "bounced")]
        else:
            kinds = [("processed", None), ("delivered", "delivered")]
            if rng.random() < MACHINE_OPENED:
                kinds.append(("open", "machine_open"))
            if rng.random() < OPENED:
                kinds += [("open", "open")] * rng.choice((1, 1, 2, 3))
                if rng.random() < CLICKED / OPENED:
                    kinds += [("click", "click")] * rng.choice((1, 1, 2))
            if rng.random() < SPAM:
                kinds.append(("spamreport", "spamreport"))
        for n, (event, engagement) in enumerate(kinds):
            rows.append(
                {
                    "sg_event_id": f"{fact.key}:{n}",
                    "event": event,
                    "lead_id": batch.lead_id,
                    "touch_key": fact.key,
                    "engagement": engagement,
                    "status": "applied" if engagement in ("open", "click") else "recorded",
                    "payload": "{}",
                    "received_at": fact.at + timedelta(minutes=5 + 90 * n),
                }
            )
    return rows
