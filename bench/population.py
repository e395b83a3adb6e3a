"""A deterministic synthetic population for the read model: leads, what they did and what sales
did with them, as the ``FactBatch`` objects lead workflows report (``nurture.contract.ledger``).

Same ``leads``, ``events`` and ``seed`` give the same rows, byte for byte. Leads are created over
26 weeks (2026-05-18 to 2026-11-16, slightly more of them later on), each with a skewed number of
events (a few leads do a lot, most do little) whose points move its score; a lead is handed off
when its score crosses the threshold or at once when it asks for a call. Sales then answer inside
the 4 h SLA or late or never (a miss reassigns the lead inside its routing pool), accept or
reject (more often at low scores and poor fit, with a reason: the lead is recycled with its
behaviour points wiped), and accepted leads are won (with an amount) or lost some weeks later.
Meanwhile each lead gets its cadence's touches (emails, call tasks) until it is handed off,
suppressed or goes cold. Campaigns bring leads in, appear on some events, and have monthly costs.

Everything stays before ``END``; reports are asked about it as of ``NOW``.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from nurture.config.config_loader import DEFAULT_CONFIG_DIR, load_rules
from nurture.contract.ledger import (
    AssignmentFact,
    EventFact,
    Fact,
    FactBatch,
    HandoffFact,
    LeadSnapshot,
    OutcomeFact,
    ScoreChangeFact,
    TouchFact,
    TransitionFact,
)
from nurture.domain.rules import DecayPolicy
from nurture.store.read_model import Campaign, CampaignCost

START = datetime(2026, 5, 18, tzinfo=UTC)
END = START + timedelta(weeks=26)  # 2026-11-16: nothing happens after this
NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)  # when the reports are asked
SHIPPED = load_rules(DEFAULT_CONFIG_DIR)
"""The rules in ``config/``: the population's leads hand off, decay and miss SLAs as leads under
these rules would (one source for the threshold, the SLA and decay, not copies of them)."""
THRESHOLD = SHIPPED.scoring.sales_ready_threshold
SLA = SHIPPED.routing.sla.contact_within
_DECAY = SHIPPED.scoring.decay or DecayPolicy()
INACTIVE_AFTER, DECAY_EVERY, DECAY_POINTS = _DECAY.inactive_after, _DECAY.every, _DECAY.points
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


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
_CAMPAIGN_NAMES = [c.name for c in CAMPAIGNS]
_CAMPAIGN_CUM = list(itertools.accumulate(c.share for c in CAMPAIGNS))

# type: (points, weight for a browsing lead, weight for a buying lead, url)
EVENT_TYPES: dict[str, tuple[int, float, float, str | None]] = {
    "page_view": (2, 34, 20, "/product"),
    "blog_visit": (1, 14, 7, "/blog/"),
    "email_open": (1, 20, 11, None),
    "email_click": (4, 9, 10, None),
    "pricing_page": (10, 2.2, 9, "/pricing"),
    "download": (10, 3.5, 7, "/resources/"),
    "whitepaper_download": (12, 1.3, 4, "/resources/research-"),
    "webinar_registered": (10, 1.4, 3, None),
    "webinar_attended": (15, 0.6, 2.5, None),
    "form_fill": (20, 0.9, 3, "/contact"),
    "trial_signup": (30, 0.15, 1.5, "/trial"),
    "demo_request": (40, 0.08, 1.2, "/demo"),
    "careers_page": (-10, 1.3, 0.2, "/careers"),
    "call_connected": (15, 0.2, 0.8, None),
    "call_no_answer": (0, 0.3, 0.3, None),
    "direct_mail_sent": (2, 0.3, 0.3, None),
    "unsubscribe": (0, 0.35, 0.04, None),
    "bounce": (0, 0.15, 0.04, None),
    "requested_call": (0, 0.012, 0.3, "/contact-sales"),
    "contact_sales": (0, 0.008, 0.2, "/contact-sales"),
}
INSTANT = frozenset({"requested_call", "contact_sales"})
SYSTEM = frozenset({"unsubscribe", "bounce"})
_TYPES = list(EVENT_TYPES)
_BROWSING = list(itertools.accumulate(v[1] for v in EVENT_TYPES.values()))
_BUYING = list(itertools.accumulate(v[2] for v in EVENT_TYPES.values()))
PAGES = ("/product", "/features", "/integrations", "/customers", "/security", "/about", "/")

# Cadences (config/cadences.yaml): (step, days after the previous step, channel)
CADENCES: dict[str, list[tuple[str, float, str]]] = {
    "enterprise": [
        ("welcome", 0.007, "email"),
        ("platform_tour", 3, "email"),
        ("case_study", 4, "email"),
        ("security", 5, "email"),
        ("roi_calculator", 5, "email"),
        ("integrations", 5, "email"),
        ("webinar_invite", 5, "email"),
        ("discovery_call", 2, "call"),
        ("rollout_playbook", 6, "email"),
        ("industry_benchmark", 6, "email"),
        ("executive_briefing", 6, "email"),
        ("peer_references", 5, "email"),
        ("check_in", 6, "email"),
    ],
    "smb": [
        ("welcome", 0.007, "email"),
        ("quick_start", 2, "email"),
        ("three_tips", 3, "email"),
        ("template_library", 4, "email"),
        ("customer_story", 5, "email"),
        ("pricing", 5, "email"),
        ("webinar_invite", 5, "email"),
        ("automation_ideas", 6, "email"),
        ("free_trial", 6, "email"),
        ("checklist", 6, "email"),
        ("live_demo", 7, "email"),
        ("last_call", 7, "email"),
    ],
    "recycle": [
        ("thanks_for_your_time", 3, "email"),
        ("whats_new", 7, "email"),
        ("helpful_resource", 9, "email"),
        ("peer_story", 9, "email"),
        ("door_open", 14, "email"),
    ],
}
BETWEEN_CYCLES = 28.0  # days

REGIONS = {
    "AMER": (0.5, ("US", "US", "US", "CA", "BR", "MX")),
    "EMEA": (0.35, ("GB", "DE", "FR", "NL", "ES", "SE", "IT")),
    "APAC": (0.15, ("AU", "SG", "JP", "IN")),
}
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
TARGET_INDUSTRIES = frozenset({"software", "saas", "fintech", "healthcare", "manufacturing"})
SPECIALIST_INDUSTRIES = frozenset({"healthcare", "pharma", "biotech"})
# title: (weight, fit points, rejected as)
TITLES: dict[str, tuple[float, int]] = {
    "VP Marketing": (4, 15),
    "Director of Operations": (6, 15),
    "Head of Revenue Operations": (4, 15),
    "CTO": (2, 15),
    "Marketing Manager": (14, 5),
    "Operations Manager": (12, 5),
    "Sales Manager": (8, 5),
    "Analyst": (14, 0),
    "Engineer": (12, 0),
    "Consultant": (8, 0),
    "Founder": (5, 0),
    "Student": (3, -30),
    "Marketing Intern": (2, -30),
}
FIRST = ("Ada", "Ben", "Chloe", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jon", "Kira")
LAST = ("Lovelace", "Okoro", "Schmidt", "Tanaka", "Rossi", "Silva", "Novak", "Berg", "Khan")
FREE_MAIL = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com")
COMPETITORS = ("competitor.example", "rivalsoft.example")

# routing.yaml: pools, managers
POOLS = {
    "specialists": ["dana", "eli"],
    "EMEA": ["alice", "bob"],
    "AMER": ["chen", "dana", "eli"],
    "APAC": ["fatima"],
}
MANAGER = {
    "alice": "maria",
    "bob": "maria",
    "chen": "nate",
    "dana": "nate",
    "eli": "nate",
    "fatima": "nate",
    "maria": "hana",
    "nate": "hana",
}
FALLBACK_OWNER = "maria"
SECOND_ESCALATION = "hana"
REJECT_REASONS = (
    ("no budget", 3.0),
    ("not a decision maker", 3.0),
    ("bad timing: next fiscal year", 2.5),
    ("already a customer", 0.8),
    ("bad contact data", 1.5),
    ("duplicate of an open opportunity", 0.7),
    ("company too small", 1.2),
    ("", 0.5),
)


def _pick(rng: random.Random, weighted: dict[str, Any] | Sequence[tuple[Any, float]]) -> Any:
    items = list(weighted.items()) if isinstance(weighted, dict) else list(weighted)
    names = [k for k, _ in items]
    weights = [w[0] if isinstance(w, tuple) else w for _, w in items]
    return rng.choices(names, weights)[0]


@dataclass
class Stats:
    """What was generated, for the benchmark's report."""

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
        handed = False
        for fact in batch.facts:
            self.rows[_TABLE[fact.kind]] += 1
            if isinstance(fact, HandoffFact):
                handed = True
                self.instant_handoffs += fact.instant
                self.rejected += fact.status == "rejected"
                self.won += fact.status == "won"
                self.lost += fact.status == "lost"
            elif isinstance(fact, AssignmentFact):
                self.sla[_sla_kind(fact)] += 1
        self.handed_off_leads += handed

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
            yield _Life(self, i).run()


class _Life:
    """One lead's life, simulated in time order up to ``END``."""

    def __init__(self, population: Population, i: int) -> None:
        self.rng = rng = random.Random(population.seed * 1_000_003 + i)
        self.i = i
        self.lead_id = f"L{i:07d}"
        self.run_id = f"{rng.getrandbits(48):012x}"  # the run id in keys (one run per lead here)
        self.created = population.created[i]
        self.n_events = population.event_counts[i]
        self.facts: list[Fact] = []
        self.serial: Counter[str] = Counter()
        # who the lead is
        region = _pick(rng, {r: w for r, (w, _) in REGIONS.items()})
        self.region = region
        self.country = rng.choice(REGIONS[region][1])
        self.industry = _pick(rng, INDUSTRIES)
        self.title = _pick(rng, TITLES)
        self.size = max(1, int(rng.lognormvariate(math.log(150), 1.4)))
        self.segment = "enterprise" if self.size >= 500 else "smb"
        self.campaign = self._campaign()
        first, last = rng.choice(FIRST), rng.choice(LAST)
        self.company = f"{last} {rng.choice(('Labs', 'Group', 'Systems', 'GmbH', 'Inc'))} {i}"
        u = rng.random()
        if u < 0.004:
            domain, self.kind = rng.choice(COMPETITORS), "competitor"
        elif u < 0.15:
            domain, self.kind = rng.choice(FREE_MAIL), "free"
        else:
            domain, self.kind = f"{last.lower()}{i}.example", "work"
        self.name = f"{first} {last}"
        self.email = f"{first.lower()}.{last.lower()}.{i}@{domain}"
        self.fit, self.fit_names = self._fit()
        self.grade = next(
            g for g, m in (("A", 35), ("B", 20), ("C", 5), ("D", -1000)) if self.fit >= m
        )
        quality = self.spec.quality if self.spec else 1.0
        self.consent = rng.random() < (self.spec.consent if self.spec else 0.7)
        self.buying = min(0.85, rng.betavariate(1.1, 7) * quality * (1.4 if self.fit > 25 else 1))
        # how the lead is doing
        self.stage = "nurturing"
        self.stage_since = self.created
        self.behaviour = 0
        self.last_behaviour: datetime = self.created
        self.decays = 0
        self.owner: str | None = None
        self.email_suppressed = False
        self.in_sales = False  # handed off and not (yet) returned: no new handoff
        self.recycle_at: datetime | None = None
        # (at, cadence, step, cycle, channel, done): done is how a queued task was done ("" for
        # the cadence's own steps)
        self.touch_plan: list[tuple[datetime, str, str, int, str, str]] = []
        self.touches_sent = 0
        self.enrolment = 0
        self.touches_done = 0
        self.handoffs: list[dict[str, Any]] = []
        self.assignments: list[dict[str, Any]] = []
        self.outcome: OutcomeFact | None = None

    # --- who -------------------------------------------------------------------------------

    def _campaign(self) -> str | None:
        rng = self.rng
        day = self.created.date()
        while True:
            u = rng.random()
            if u < ORGANIC_SHARE:
                self.spec: CampaignSpec | None = None
                return None
            u -= ORGANIC_SHARE
            for spec in CAMPAIGNS:
                if u < spec.share:
                    break
                u -= spec.share
            if spec.window is None or spec.window[0] <= day < spec.window[1]:
                self.spec = spec
                return spec.name

    def _fit(self) -> tuple[int, list[str]]:
        rng = self.rng
        rules: list[tuple[str, int]] = []
        title_points = TITLES[self.title][1]
        if title_points:
            rules.append(
                (
                    {15: "senior title", 5: "manager title", -30: "student or intern"}[
                        title_points
                    ],
                    title_points,
                )
            )
        if self.size >= 200:
            rules.append(("company 200+ employees", 10))
        if self.size >= 1000:
            rules.append(("company 1000+ employees", 10))
        if self.industry in TARGET_INDUSTRIES:
            rules.append(("target industry", 10))
        if rng.random() < 0.4:
            rules.append(("budget 10k+", 10))
        if rng.random() < 0.3:
            rules.append(("buying within 6 months", 10))
        if self.kind == "competitor":
            rules.append(("competitor email", -100))
        elif self.kind == "free":
            rules.append(("free email address", -5))
        return sum(p for _, p in rules), [f"{n} {p:+d}" for n, p in rules]

    @property
    def score(self) -> int:
        return self.fit + self.behaviour

    # --- facts -----------------------------------------------------------------------------

    def _key(self, kind: str) -> str:
        self.serial[kind] += 1
        return f"{self.lead_id}:{self.run_id}:{kind}{self.serial[kind]}"

    def _score_change(
        self, at: datetime, delta: int, cause: Any, detail: str, key: str | None = None
    ) -> None:
        self.facts.append(
            ScoreChangeFact(
                key=key or self._key("s"),
                at=at,
                delta=delta,
                score_after=self.score,
                cause=cause,
                detail=detail,
            )
        )

    def _move(
        self, at: datetime, to: str, by: str, reason: str, handoff: int | None = None
    ) -> None:
        """As the workflow records it: a move within a stage (reassigned, chased again) keeps
        the stage's clock running and has no time in stage; only sales stages and closes name
        the handoff."""
        from_stage = self.stage
        same = from_stage == to
        self.facts.append(
            TransitionFact(
                key=self._key("t"),
                at=at,
                from_stage=from_stage,
                to_stage=to,
                by=by,
                reason=reason,
                score=self.score,
                owner=self.owner,
                seconds_in_from_stage=None if same else (at - self.stage_since).total_seconds(),
                handoff=handoff if to in ("assigned", "working", "won", "lost") else None,
            )
        )
        if not same:
            self.stage, self.stage_since = to, at

    # --- the life --------------------------------------------------------------------------

    def run(self) -> FactBatch:
        rng = self.rng
        if self.fit:  # the lead's first stage (nurturing) is not a transition: it has no row
            self._score_change(self.created, self.fit, "fit", ", ".join(self.fit_names))
        self._plan_touches(self.segment, self.created, rng.randint(3, 17), cycles=2)
        for n, at in enumerate(self._event_times()):
            self._advance(at)
            self._event(at, first=n == 0)
        self._advance(END)
        return self._batch()

    def _event_times(self) -> list[datetime]:
        rng = self.rng
        room = (END - self.created).total_seconds() - 60
        life = min(room, rng.lognormvariate(math.log(40 * 86400), 0.8))
        life = max(life, min(room, 3600.0))
        bursts = [rng.uniform(0, life) for _ in range(1 + self.n_events // 6)]
        offsets = [rng.uniform(1, 90)]
        for _ in range(self.n_events - 1):
            if rng.random() < 0.6:
                offset = rng.choice(bursts) + rng.gauss(0, 2 * 86400)
            else:
                offset = rng.uniform(0, life)
            offsets.append(min(max(offset, 30.0), room))
        offsets.sort()
        return [self.created + timedelta(seconds=s) for s in offsets]

    def _event(self, at: datetime, first: bool) -> None:
        rng = self.rng
        if first:
            kind = self.spec.capture if self.spec else rng.choice(("form_fill", "download"))
        else:
            table = _BUYING if rng.random() < self.buying else _BROWSING
            kind = _TYPES[bisect.bisect(table, rng.random() * table[-1])]
        points, _, _, path = EVENT_TYPES[kind]
        url = None
        detail = f"{kind} {points:+d}"
        if kind == "page_view":
            path = rng.choice(PAGES)
            if at - self.last_behaviour >= DAY:
                points, detail = points + 5, f"{detail}, return_visit +5"
        elif kind == "email_click" and rng.random() < 0.12:
            points, path, detail = 12, "/pricing", "clicked pricing link in an email +12"
        if path is not None:
            url = f"https://nurture.example{path}"
            if path.endswith(("/", "-")) and path != "/":
                url += f"{rng.randint(1, 40)}"
        campaign = self.campaign
        if not first and (campaign is None or rng.random() < 0.7):
            campaign = None
            if rng.random() < 0.3:
                campaign = rng.choices(_CAMPAIGN_NAMES, cum_weights=_CAMPAIGN_CUM)[0]
        if kind not in SYSTEM and points:
            self.last_behaviour, self.decays = at, 0
        self.behaviour += points
        key = self._key("e")
        self.facts.append(
            EventFact(
                key=key,
                at=at,
                received_at=at + timedelta(seconds=rng.uniform(0.2, 90)),
                type=kind,
                url=url,
                campaign=campaign,
                points=points,
                score_after=self.score,
            )
        )
        if points:
            self._score_change(at, points, "event", detail, key=f"{key}:score")
        if kind in SYSTEM:
            self.email_suppressed = True
            if not self.in_sales and self.stage != "suppressed":
                self._suppress(at, f"email {kind}")
        if not self.in_sales and (kind in INSTANT or self.score >= THRESHOLD):
            if kind in INSTANT:
                self._hand_off(at, f"instant: {kind}", True)
            else:
                self._hand_off(
                    at, f"score {self.score} reached threshold {THRESHOLD} on {kind}", False
                )

    def _suppress(self, at: datetime, reason: str) -> None:
        self._move(at, "suppressed", "system", reason)
        steps = [t for t in self.touch_plan if not t[5]]
        self.touch_plan = []
        if steps:  # the next step is recorded as suppressed, then the cadence stops
            _, cadence, step, cycle, channel, _ = steps[0]
            self._touch(at, cadence, step, cycle, channel, "suppressed", "address suppressed")

    def _advance(self, until: datetime) -> None:
        """Everything due before ``until``: decay, a recycled lead's reset, cadence touches."""
        while True:
            candidates: list[tuple[datetime, int]] = []
            if self.behaviour > 0:
                due = self.last_behaviour + INACTIVE_AFTER + self.decays * DECAY_EVERY
                candidates.append((due, 0))
            if self.recycle_at is not None:
                candidates.append((self.recycle_at, 1))
            if self.touch_plan:
                candidates.append((self.touch_plan[0][0], 2))
            if not candidates:
                return
            at, what = min(candidates)
            if at >= until:
                return
            if what == 0:
                delta = min(DECAY_POINTS, self.behaviour)
                self.behaviour -= delta
                self.decays += 1
                self._score_change(at, -delta, "decay", f"inactive {14 + 7 * (self.decays - 1)}d")
            elif what == 1:
                self.recycle_at = None
                self._recycled(at)
            else:
                _, cadence, step, cycle, channel, done = self.touch_plan.pop(0)
                if done:
                    self._touch(at, cadence, step, cycle, channel, "task_done", done, ":done")
                else:
                    self._cadence_touch(at, cadence, step, cycle, channel)

    def _plan_touches(self, cadence: str, start: datetime, budget: int, cycles: int) -> None:
        plan = []
        at = start
        for cycle in range(1, cycles + 1):
            if cycle > 1:
                at += timedelta(days=BETWEEN_CYCLES)
            for step, days, channel in CADENCES[cadence]:
                at += timedelta(days=days, minutes=self.rng.uniform(0, 240))
                plan.append((at, cadence, step, cycle, channel, ""))
        self.touch_plan = plan[:budget]
        self.enrolment += 1

    def _cadence_touch(self, at: datetime, cadence: str, step: str, cycle: int, ch: str) -> None:
        u = self.rng.random()
        if not self.consent:  # no opt-in: the cadence runs, nothing reaches the lead
            status = "skipped" if ch == "email" else "task_skipped"
            self._touch(at, cadence, step, cycle, ch, status, "no marketing consent")
            return
        if ch == "call":
            status, detail = ("task", None) if u < 0.75 else ("task_skipped", "no phone number")
            if status == "task" and self.rng.random() < 0.7:  # inside sales calls within 2 days
                outcome = self.rng.choice(("connected", "no_answer", "left_voicemail"))
                by = self.rng.choice(("alice", "bob", "chen", "fatima"))
                done_at = at + timedelta(hours=self.rng.uniform(0.5, 48))
                bisect.insort(
                    self.touch_plan, (done_at, cadence, step, cycle, ch, f"{outcome} by {by}")
                )
        elif u < 0.88:
            status, detail = "sent", None
        elif u < 0.94:
            status, detail = "skipped", "frequency cap"
        elif u < 0.985:
            status, detail = "skipped", "outside send window: next weekday"
        else:
            status, detail = "failed", "provider error 503"
        self._touch(at, cadence, step, cycle, ch, status, detail)

    def _touch(
        self,
        at: datetime,
        cadence: str,
        step: str,
        cycle: int,
        channel: str,
        status: Any,
        detail: str | None,
        suffix: str = "",
    ) -> None:
        self.touches_sent += status == "sent"
        self.touches_done += 1
        self.facts.append(
            TouchFact(
                key=f"touch:{self.lead_id}:{cadence}:e{self.enrolment}:c{cycle}:{step}{suffix}",
                at=at,
                cadence=cadence,
                step=step,
                cycle=cycle,
                channel=channel,
                status=status,
                detail=detail,
            )
        )

    # --- sales -----------------------------------------------------------------------------

    def _route(self) -> list[str]:
        if self.industry in SPECIALIST_INDUSTRIES:
            return POOLS["specialists"]
        return POOLS[self.region]

    def _hand_off(self, at: datetime, qualified_by: str, instant: bool) -> None:
        rng = self.rng
        number = len(self.handoffs) + 1
        pool = self._route()
        rep = pool[(self.i + number) % len(pool)]
        self.touch_plan = []  # the cadence stops at handoff
        self.in_sales = True
        handoff: dict[str, Any] = {
            "key": f"{self.lead_id}:{self.run_id}:h{number}",
            "version": 1,
            "number": number,
            "at": at,
            "score": self.score,
            "grade": self.grade,
            "threshold": THRESHOLD,
            "instant": instant,
            "qualified_by": qualified_by,
            "campaign": self.campaign,
            "segment": self.segment,
            "rep": rep,
            "touches_before": self.touches_sent,
            "status": "open",
        }
        self.handoffs.append(handoff)
        self.owner = rep
        self._move(at, "assigned", "routing", f"handoff: {qualified_by}", number)
        # the SLA clock, rep after rep
        assigned_at, reason, missed = at, f"handoff: {qualified_by}", []
        responded: tuple[datetime, str] | None = None
        while True:
            due = assigned_at + SLA
            a: dict[str, Any] = {
                "key": f"{self.lead_id}:{self.run_id}:a{len(self.assignments) + 1}",
                "version": 1,
                "handoff": number,
                "rep": rep,
                "at": assigned_at,
                "due_at": due,
                "reason": reason,
            }
            self.assignments.append(a)
            u = rng.random()
            if u < 0.8:  # in time, mostly quickly
                delay = timedelta(hours=min(3.95, rng.expovariate(1 / 1.1)) + 0.03)
            elif u < 0.94:
                delay = SLA + timedelta(hours=rng.expovariate(1 / 10))
            else:
                delay = timedelta.max
            if delay < SLA:
                if assigned_at + delay <= END:
                    responded = (assigned_at + delay, rep)
                break
            if due > END:
                break
            missed.append(rep)
            manager = MANAGER.get(rep, SECOND_ESCALATION)
            a.update(version=2, misses=1, first_missed_at=due, escalations=1, escalated_to=manager)
            handoff["misses"] = len(missed)
            candidates = [r for r in pool if r not in missed] or (
                [FALLBACK_OWNER] if FALLBACK_OWNER not in missed else []
            )
            if candidates and rng.random() < 0.85:
                rep = candidates[0]
                a.update(version=3, reassigned_to=rep)
                reason = f"reassigned after SLA miss by {missed[-1]}"
                self.owner = rep
                self._move(due, "assigned", "routing", reason, number)
                assigned_at = due
                continue
            # nobody else to take it: the owner keeps it and is chased again
            self._move(due, "assigned", "sla", f"SLA missed by {rep}", number)
            if delay != timedelta.max:
                if assigned_at + delay <= END:
                    responded = (assigned_at + delay, rep)
            elif due + SLA <= END:
                a.update(
                    version=3,
                    misses=2,
                    escalations=2,
                    escalated_to=f"{manager}, {SECOND_ESCALATION}",
                )
                handoff["misses"] = len(missed) + 1
            break
        if responded is not None:
            self._respond(handoff, a, *responded)

    def _respond(self, handoff: dict[str, Any], a: dict[str, Any], at: datetime, rep: str) -> None:
        rng = self.rng
        score = handoff["score"]
        p = 0.55 - (min(max(score, 60), 150) - 60) * 0.47 / 90
        p += {"A": -0.08, "B": -0.03, "C": 0.03, "D": 0.12}[self.grade]
        if handoff["instant"]:
            p -= 0.1
        if self.kind == "competitor" or TITLES[self.title][1] < 0:
            p += 0.4
        rejected = rng.random() < min(0.9, max(0.02, p))
        response = "rejected" if rejected else ("accepted" if rng.random() < 0.7 else "contacted")
        a.update(
            version=a["version"] + 1,
            responded_at=at,
            response=response,
            seconds_to_response=(at - a["at"]).total_seconds(),
        )
        handoff.update(version=handoff["version"] + 1, status_at=at)
        if rejected:
            if self.kind == "competitor":
                reason = "competitor"
            elif TITLES[self.title][1] < 0:
                reason = "student / job seeker"
            else:
                reason = _pick(rng, REJECT_REASONS)
            handoff.update(status="rejected", reject_reason=reason or None, rejected_by=rep)
            self._move(at, "recycled", rep, f"rejected: {reason}", handoff["number"])
            self.owner = None
            self.recycle_at = at  # the reset happens in time order (_advance)
            return
        handoff["status"] = "accepted"
        self._move(at, "working", rep, response, handoff["number"])
        closes = at + timedelta(days=rng.gammavariate(2.0, 12.0))
        if closes > END:
            return
        nurtured = self.touches_sent > 0  # nurtured leads close a little more, a little bigger
        p_win = {"A": 0.46, "B": 0.38, "C": 0.28, "D": 0.16}[self.grade] + 0.06 * nurtured
        won = rng.random() < p_win
        scale = (40_000 if self.segment == "enterprise" else 9_000) * (1.12 if nurtured else 1)
        amount = round(rng.lognormvariate(math.log(scale), 0.6), -2)
        result = "won" if won else "lost"
        self.outcome = OutcomeFact(
            key=f"{self.lead_id}:{self.run_id}:h{handoff['number']}:outcome",
            at=closes,
            result=result,
            amount=amount if won or rng.random() < 0.3 else None,
            rep=rep,
            handoff=handoff["number"],
        )
        self.facts.append(self.outcome)
        handoff.update(version=handoff["version"] + 1, status=result, status_at=closes)
        shown = f" ({self.outcome.amount:g})" if self.outcome.amount is not None else ""
        self._move(closes, result, rep, f"{result}{shown}", handoff["number"])

    def _recycled(self, at: datetime) -> None:
        self.in_sales = False
        if self.behaviour:
            delta = -self.behaviour
            self.behaviour = 0
            self._score_change(at, delta, "reset", "rejected by sales: behaviour reset")
        if self.email_suppressed:
            self._move(at, "suppressed", "system", "email suppressed")
        else:
            self._plan_touches("recycle", at, 5, cycles=1)

    # --- the batch -------------------------------------------------------------------------

    def _batch(self) -> FactBatch:
        facts = self.facts
        facts.extend(HandoffFact(**h) for h in self.handoffs)
        facts.extend(AssignmentFact(**a) for a in self.assignments)
        facts.sort(key=lambda f: f.at)
        outcome = self.outcome
        last = max(f.at for f in facts)
        events = sum(1 for f in facts if f.kind == "event")
        lead = LeadSnapshot(
            lead_id=self.lead_id,
            workflow_id=f"lead-{self.lead_id}",
            version=len(facts),
            email=self.email,
            name=self.name,
            company=self.company,
            title=self.title,
            industry=self.industry,
            country=self.country,
            segment=self.segment,
            campaign=self.campaign,
            stage=self.stage,
            stage_since=self.stage_since,
            score=self.score,
            grade=self.grade,
            owner=self.owner,
            created_at=self.created,
            handoffs=len(self.handoffs),
            touches_sent=self.touches_sent,
            events=events,
            outcome=outcome.result if outcome else None,
            amount=outcome.amount if outcome else None,
            closed_at=outcome.at if outcome else None,
            updated_at=last,
        )
        return FactBatch(lead_id=self.lead_id, lead=lead, facts=facts)
