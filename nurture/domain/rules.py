"""Marketer- and sales-owned rules, as data: scoring, cadences, routing and the SLA.

Loaded from YAML by :mod:`nurture.config.config_loader`; handed to workflows through an activity
so a change to the files reaches running leads at a defined point (see ``workflows/lead_shell.py``).
These models import nothing from Temporal and hold no I/O.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nurture.domain.durations import Duration
from nurture.domain.leads import EVENT_TYPE_PATTERN, PROFILE_FIELDS
from nurture.domain.matching import Condition
from nurture.domain.send_window import FrequencyCap, SendWindow
from nurture.domain.tasks import TASK_CHANNELS, TaskChannel

TOPIC_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
"""A cadence's topic: a slug (it travels in preference links' pages and the lead's state)."""

Grade = Literal["A", "B", "C", "D"]


class _Strict(BaseModel):
    # validate_default + revalidate: default durations go through the loader's time scale too.
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, revalidate_instances="always"
    )


def _check_fields(condition: Condition, where: str) -> None:
    for name in condition:
        if name not in PROFILE_FIELDS and not name.startswith("custom."):
            raise ValueError(
                f"{where}: unknown profile field {name!r}; use one of "
                f"{', '.join(PROFILE_FIELDS)} or custom.<name>"
            )


# --- scoring.yaml -------------------------------------------------------------------------


class UrlRule(_Strict):
    """A page-view URL pattern that re-classifies the visit or gives its own points."""

    pattern: str = Field(min_length=1, description="fnmatch glob, case-insensitive")
    event: str = Field(
        default="page_view",
        pattern=EVENT_TYPE_PATTERN,
        description="the event type whose url is matched: page_view, or email_click for links",
    )
    behaviour: str | None = Field(default=None, pattern=EVENT_TYPE_PATTERN)
    points: int | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _one_effect(self) -> UrlRule:
        if (self.behaviour is None) == (self.points is None):
            raise ValueError("give exactly one of 'behaviour' (re-classify) or 'points'")
        return self

    @property
    def label(self) -> str:
        return self.name or f"url {self.pattern}"


class FitRule(_Strict):
    """Points for who the lead is (title, size, industry, budget, timeframe…)."""

    name: str = Field(min_length=1)
    when: Condition
    points: int

    @model_validator(mode="after")
    def _fields_known(self) -> FitRule:
        _check_fields(self.when, f"fit rule {self.name!r}")
        return self


class DecayPolicy(_Strict):
    """Inactivity lowers behaviour points: after ``inactive_after`` with no activity, lose
    ``points`` every ``every``, never below ``floor``."""

    inactive_after: Duration = timedelta(days=14)
    every: Duration = timedelta(days=7)
    points: int = Field(default=5, gt=0)
    floor: int = 0

    @model_validator(mode="after")
    def _positive_period(self) -> DecayPolicy:
        if self.every <= timedelta(0):
            raise ValueError("'every' must be longer than zero")
        return self


class GradeBand(_Strict):
    grade: Grade
    min_fit: int


class ScoringRules(_Strict):
    behaviours: dict[str, int] = Field(min_length=1)
    return_visit_after: Duration = timedelta(hours=24)
    url_rules: list[UrlRule] = Field(default_factory=list)
    fit: list[FitRule] = Field(default_factory=list)
    decay: DecayPolicy | None = None
    sales_ready_threshold: int = Field(gt=0)
    instant_qualify: list[str] = Field(default_factory=list)
    grades: list[GradeBand] = Field(min_length=1)
    reset_behaviour_on_recycle: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> ScoringRules:
        import re

        for name in self.behaviours:
            if not re.match(EVENT_TYPE_PATTERN, name):
                raise ValueError(f"behaviour {name!r}: use lower_snake_case names")
        for rule in self.url_rules:
            if rule.behaviour and rule.behaviour not in self.behaviours:
                raise ValueError(
                    f"url rule {rule.pattern!r} re-classifies to {rule.behaviour!r}, "
                    "which has no points under 'behaviours'"
                )
        bands = [b.min_fit for b in self.grades]
        if bands != sorted(bands, reverse=True) or len({b.grade for b in self.grades}) != len(
            self.grades
        ):
            raise ValueError("grades: list each grade once, from the highest min_fit down")
        return self

    def known_event_types(self) -> set[str]:
        return set(self.behaviours) | set(self.instant_qualify) | set(SYSTEM_EVENT_TYPES)


SYSTEM_EVENT_TYPES = ("unsubscribe", "bounce", "spamreport", "dropped")
"""Events that change what we may send rather than the score (filled out by the email issue)."""


# --- cadences.yaml ------------------------------------------------------------------------


Channel = Literal["email"] | TaskChannel
STEP_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


def _omitted_when_empty(value: object) -> bool:
    # Left out of the rules' JSON while unused: books without A/B tests keep the size (and
    # the bytes) they had in every lead's history.
    return not value


class StepVariant(_Strict):
    """One version of an email step in an A/B test: its own ``subject`` and/or ``template``
    (what it leaves out is the step's), sent to a share of the leads given by ``weight``."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    weight: int = Field(default=1, ge=1, le=1000, description="share of the leads, relative")
    subject: str | None = Field(default=None, min_length=1, description="Jinja2 text")
    template: str | None = Field(default=None, min_length=1, description="file under templates/")


Metric = Literal["click", "open"]
"""What an A/B test compares: the share of emails clicked, or opened (by a person)."""


class WinnerRule(_Strict):
    """Send the best variant to everyone once it is clear: when every variant has been sent
    ``after`` times and one beats the others on ``metric`` with at least ``min_probability``."""

    metric: Metric = "click"
    after: int = Field(ge=1, description="sends of each variant before a winner is chosen")
    min_probability: float = Field(default=0.95, ge=0.5, lt=1)


class EmailVersion(NamedTuple):
    variant: str | None
    template: str
    subject: str


def variant_key(cadence_id: str, step_name: str) -> str:
    """Where a lead keeps its variant draw for a step, and a winner is kept: ``cadence/step``."""
    return f"{cadence_id}/{step_name}"


class DecidedWinner(_Strict):
    """A winner rule's decision: from ``decided_at`` on, the step sends ``variant``."""

    variant: str
    because: str = Field(description="the evidence, in words")
    decided_at: datetime


class CadenceStep(_Strict):
    """One touch. ``email`` steps send ``template``; ``call``/``voicemail``/``direct_mail``
    steps put a task (``title``, ``instructions``) in the inside-sales queue and wait for its
    outcome up to ``due_within`` before the cadence moves on."""

    name: str = Field(pattern=STEP_NAME_PATTERN)
    delay: Duration = Field(description="wait after the previous step (or the enrolment)")
    channel: Channel = "email"
    template: str | None = Field(default=None, min_length=1, description="file under templates/")
    subject: str | None = Field(default=None, min_length=1, description="Jinja2 text")
    title: str | None = Field(default=None, min_length=1, description="task title, Jinja2 text")
    instructions: str = Field(default="", description="what the caller should do, Jinja2 text")
    due_within: Duration = Field(
        default=timedelta(days=2), description="how long the task may stay open"
    )
    variants: list[StepVariant] = Field(
        default_factory=list,
        exclude_if=_omitted_when_empty,
        description="A/B test: two or more versions of the email, each lead getting one",
    )
    winner: WinnerRule | None = Field(
        default=None,
        exclude_if=_omitted_when_empty,
        description="send the best variant to everyone once the evidence is clear",
    )

    @model_validator(mode="after")
    def _fits_channel(self) -> CadenceStep:
        self._check_variants()
        if self.channel == "email":
            missing = [f for f in ("template", "subject") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"email step {self.name!r} needs {' and '.join(missing)}")
            if self.title is not None or self.instructions:
                raise ValueError(
                    f"email step {self.name!r}: 'title'/'instructions' are for task steps "
                    f"({', '.join(TASK_CHANNELS)})"
                )
        else:
            if self.template is not None or self.subject is not None:
                raise ValueError(
                    f"{self.channel} step {self.name!r}: 'template'/'subject' are for email "
                    "steps; give the task a 'title' and 'instructions'"
                )
            if self.title is None:
                raise ValueError(f"{self.channel} step {self.name!r} needs a 'title'")
        if self.due_within <= timedelta(0):
            raise ValueError(f"step {self.name!r}: 'due_within' must be longer than zero")
        return self

    def _check_variants(self) -> None:
        if self.variants and self.channel != "email":
            raise ValueError(f"{self.channel} step {self.name!r}: 'variants' are for email steps")
        if self.variants and len(self.variants) < 2:
            raise ValueError(f"step {self.name!r}: an A/B test needs at least two 'variants'")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"step {self.name!r}: variant names must be unique")
        if self.winner is not None and not self.variants:
            raise ValueError(f"step {self.name!r}: a 'winner' rule needs 'variants' to choose from")

    def variant(self, name: str | None) -> StepVariant | None:
        """The variant called ``name`` (None: not an A/B step, or no such variant)."""
        return next((v for v in self.variants if v.name == name), None)

    def versions(self) -> list[EmailVersion]:
        """Each email this step may send: one per variant, or its own (none: a task step)."""
        if self.template is None or self.subject is None:
            return []
        if not self.variants:
            return [self.email(None)]
        return [self.email(variant) for variant in self.variants]

    def email(self, variant: StepVariant | None) -> EmailVersion:
        """The email of an email step as ``variant`` has it (None: the step's own): what the
        variant leaves out is the step's."""
        assert self.template is not None and self.subject is not None  # an email step
        return EmailVersion(
            variant.name if variant else None,
            (variant.template if variant else None) or self.template,
            (variant.subject if variant else None) or self.subject,
        )


class Cadence(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    name: str
    segment: Condition = Field(default_factory=dict)
    steps: list[CadenceStep] = Field(min_length=1)
    cycles: int = Field(default=1, ge=1, le=52)
    between_cycles: Duration = timedelta(0)
    recycle: bool = False
    send_window: SendWindow | None = Field(
        default=None, description="when this cadence may email; default: the book's"
    )
    topic: str | None = Field(
        default=None,
        pattern=TOPIC_PATTERN,
        description="what its emails are about (e.g. product-news): people choose topics on "
        "the preferences page; a lead that left this topic skips its email touches",
    )
    consent: Literal["required", "optional"] = Field(
        default="optional",
        description="required: email only leads with a consent record (others skip the touch)",
    )

    @model_validator(mode="after")
    def _valid(self) -> Cadence:
        _check_fields(self.segment, f"cadence {self.id!r} segment")
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"cadence {self.id!r}: step names must be unique")
        return self


class Sender(_Strict):
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    name: str = "Nurture"


class CadenceBook(_Strict):
    sender: Sender
    cadences: list[Cadence] = Field(min_length=1)
    send_window: SendWindow = SendWindow()
    default_timezone: str = Field(
        default="UTC", description="for leads without a known 'timezone' in their profile"
    )
    frequency_cap: FrequencyCap | None = None

    @model_validator(mode="after")
    def _complete(self) -> CadenceBook:
        ids = [c.id for c in self.cadences]
        if len(set(ids)) != len(ids):
            raise ValueError("cadence ids must be unique")
        recycle = [c.id for c in self.cadences if c.recycle]
        if len(recycle) != 1:
            raise ValueError(
                f"exactly one cadence must have 'recycle: true' (found {len(recycle)}): "
                "rejected leads need somewhere to go"
            )
        try:
            ZoneInfo(self.default_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"default_timezone {self.default_timezone!r} is not an IANA time zone "
                "(e.g. UTC, Europe/Berlin, America/New_York)"
            ) from None
        if not any(not c.recycle and not c.segment for c in self.cadences):
            raise ValueError(
                "add a catch-all nurture cadence (no 'segment') so every lead matches one"
            )
        return self

    @property
    def recycle_cadence(self) -> Cadence:
        return next(c for c in self.cadences if c.recycle)

    def get(self, cadence_id: str) -> Cadence | None:
        return next((c for c in self.cadences if c.id == cadence_id), None)

    def window_for(self, cadence: Cadence) -> SendWindow:
        return cadence.send_window or self.send_window

    def topics(self) -> list[str]:
        """Every topic a cadence declares, in the order they first appear."""
        return list(dict.fromkeys(c.topic for c in self.cadences if c.topic))


# --- routing.yaml -------------------------------------------------------------------------


class AwayPeriod(_Strict):
    """Days a rep takes no new leads (holiday, leave, conference): ``from`` and ``until`` are
    both included, as calendar days in UTC. Written ``{from: 2026-12-21, until: 2027-01-03}``."""

    model_config = ConfigDict(populate_by_name=True)

    from_: date = Field(alias="from", description="first day away")
    until: date = Field(description="last day away (back the day after)")

    def covers(self, day: date) -> bool:
        return self.from_ <= day <= self.until

    def __str__(self) -> str:
        return f"{self.from_.isoformat()}..{self.until.isoformat()}"


class Rep(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    name: str
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    region: str | None = None
    industries: list[str] = Field(default_factory=list)
    manager: str | None = None
    crm_user_id: str | None = Field(default=None, description="the rep's user id in the CRM")
    max_open_leads: int | None = Field(
        default=None,
        ge=0,
        description="most leads the rep may hold in 'assigned' or 'working'; none: no cap",
    )
    away: list[AwayPeriod] = Field(
        default_factory=list, description="periods in which the rep gets no new leads"
    )

    @model_validator(mode="after")
    def _sane_availability(self) -> Rep:
        for period in self.away:
            if period.until < period.from_:
                raise ValueError(
                    f"rep {self.id!r}: away period ends before it starts "
                    f"(from {period.from_.isoformat()} until {period.until.isoformat()})"
                )
        return self

    def away_on(self, day: date) -> AwayPeriod | None:
        """The away period that covers ``day``, if any."""
        return next((p for p in self.away if p.covers(day)), None)


class RoutingRule(_Strict):
    name: str
    when: Condition = Field(default_factory=dict)
    pool: list[str] = Field(min_length=1)
    strategy: Literal["round_robin", "first"] = "round_robin"

    @model_validator(mode="after")
    def _fields_known(self) -> RoutingRule:
        _check_fields(self.when, f"routing rule {self.name!r}")
        return self


class SlaPolicy(_Strict):
    """Sales must contact an assigned lead within ``contact_within``. On a miss the rep's
    manager is alerted and the lead goes to the next rep of its pool; from the second miss on,
    ``second_escalation`` (e.g. the head of sales) is alerted too. Once that ladder is climbed
    and nobody is left to take the lead, the owner keeps it and the alerts repeat every
    ``remind_every`` (not every SLA period)."""

    contact_within: Duration = timedelta(hours=4)
    reassign_on_miss: bool = True
    second_escalation: str | None = None
    remind_every: Duration = timedelta(days=1)


class CrmPush(_Strict):
    """Push handed-off leads to the CRM (Salesforce-shaped) and keep them up to date. Where
    the CRM is and how to log in comes from the environment (``NURTURE_CRM_URL`` …)."""

    enabled: bool = False
    lead_source: str = Field(default="Nurture", description="LeadSource when no campaign")
    ratings: dict[str, str] = Field(
        default_factory=lambda: {"A": "Hot", "B": "Warm", "C": "Cold", "D": "Cold"},
        description="grade -> Rating picklist value",
    )


class RoutingRules(_Strict):
    reps: list[Rep] = Field(min_length=1)
    rules: list[RoutingRule] = Field(default_factory=list)
    fallback_owner: str
    sla: SlaPolicy = SlaPolicy()
    forward_activity_every: Duration = Field(
        default=timedelta(minutes=15),
        description="new activity of a lead in sales is sent to its owner as a digest",
    )
    crm: CrmPush = CrmPush()

    @model_validator(mode="after")
    def _references(self) -> RoutingRules:
        ids = [r.id for r in self.reps]
        if len(set(ids)) != len(ids):
            raise ValueError("rep ids must be unique")
        known = set(ids)
        for rep in self.reps:
            if rep.manager and rep.manager not in known:
                raise ValueError(f"rep {rep.id!r}: manager {rep.manager!r} is not a listed rep")
        for rule in self.rules:
            missing = [r for r in rule.pool if r not in known]
            if missing:
                raise ValueError(
                    f"routing rule {rule.name!r} pool: unknown reps {missing} (list them under "
                    "'reps')"
                )
        if self.fallback_owner not in known:
            raise ValueError(f"fallback_owner {self.fallback_owner!r} is not a listed rep")
        if self.sla.second_escalation and self.sla.second_escalation not in known:
            raise ValueError(f"sla.second_escalation {self.sla.second_escalation!r} is not a rep")
        return self

    def rep(self, rep_id: str) -> Rep | None:
        return next((r for r in self.reps if r.id == rep_id), None)


# --- engine.yaml (optional) ---------------------------------------------------------------


class EngineSettings(_Strict):
    """Operator knobs that shape how workflows run, not what marketers decide."""

    activity_timeout: Duration = timedelta(seconds=30)
    max_events_per_run: int = Field(default=2000, ge=10)
    rules_refresh: Literal["cycle"] = "cycle"
    erase_cold_leads_after: Duration | None = None
    """Retention: a lead in a cold stage with no event and no stage change for this long is
    erased as by ``nurture lead forget`` (daily, by a Temporal Schedule). None: kept."""


class Rules(_Strict):
    """Everything a lead workflow decides with, plus the fingerprint of the files it came from."""

    scoring: ScoringRules
    cadences: CadenceBook
    routing: RoutingRules
    engine: EngineSettings = EngineSettings()
    version: str = ""
    winners: dict[str, DecidedWinner] = Field(
        default_factory=dict,
        exclude_if=_omitted_when_empty,
        description="winner rules' decisions by 'cadence/step' (from the engine database)",
    )

    def winner_of(self, cadence: Cadence, step: CadenceStep) -> StepVariant | None:
        """The variant a decided winner rule sends to everyone at this step, if any: only
        while the step still has its winner rule and that variant."""
        decided = self.winners.get(variant_key(cadence.id, step.name))
        if decided is None or step.winner is None:
            return None
        return step.variant(decided.variant)
