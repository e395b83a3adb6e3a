"""Who gets a sales-ready lead: territory rules, round robin within a pool, fallback owner;
reps who are away or at their cap of open leads are skipped (then the manager, then the
fallback owner takes the lead)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date

from pydantic import BaseModel, Field

from nurture.domain.leads import LeadProfile
from nurture.domain.matching import condition_holds
from nurture.domain.rules import AwayPeriod, RoutingRules


class RouteDecision(BaseModel):
    rule: str
    pool: list[str]
    strategy: str


def route(profile: LeadProfile, routing: RoutingRules) -> RouteDecision:
    """The first routing rule whose condition matches the lead, else the fallback owner."""
    fields = profile.fields()
    for rule in routing.rules:
        if condition_holds(rule.when, fields):
            return RouteDecision(rule=rule.name, pool=list(rule.pool), strategy=rule.strategy)
    return RouteDecision(rule="fallback", pool=[routing.fallback_owner], strategy="first")


def pick_rep(candidates: list[str], strategy: str, turn: int) -> str:
    """Round robin takes the ``turn``-th candidate (mod pool size); ``first`` the first."""
    if not candidates:
        raise ValueError("no candidate reps to pick from")
    return candidates[0] if strategy == "first" else candidates[turn % len(candidates)]


def candidates_after_miss(
    decision: RouteDecision, missed: list[str], routing: RoutingRules
) -> list[str]:
    """Reps who may take over after SLA misses: the pool without those who missed, then the
    fallback owner; empty when everyone has missed (the lead stays put, escalations go on)."""
    remaining = [r for r in decision.pool if r not in missed]
    if remaining:
        return remaining
    return [] if routing.fallback_owner in missed else [routing.fallback_owner]


# --- availability: away periods and caps on open leads ---------------------------------------


class RepLimits(BaseModel):
    """What the assignment activity needs to know about a rep to skip them: their cap on open
    leads, when they are away, and their manager (who takes the lead when the whole pool is
    unavailable). Built from the rules by :func:`rep_limits`; carried in ``AssignRequest``."""

    id: str
    max_open_leads: int | None = None
    away: list[AwayPeriod] = Field(default_factory=list)
    manager: str | None = None

    def away_on(self, day: date) -> AwayPeriod | None:
        return next((p for p in self.away if p.covers(day)), None)


def rep_limits(rules: RoutingRules, candidates: Sequence[str]) -> list[RepLimits]:
    """The limits of the candidates, of their managers (the manager fallback needs to know
    whether the manager is available too) and of the fallback owner (for the log), in that
    order, each rep once. Reps the rules do not list are left out: the activity treats them as
    always available."""
    wanted: list[str] = []
    for rep_id in candidates:
        rep = rules.rep(rep_id)
        for who in (rep_id, rep.manager if rep else None):
            if who and who not in wanted:
                wanted.append(who)
    if rules.fallback_owner not in wanted:
        wanted.append(rules.fallback_owner)
    limits: list[RepLimits] = []
    for rep_id in wanted:
        rep = rules.rep(rep_id)
        if rep is not None:
            limits.append(
                RepLimits(
                    id=rep.id,
                    max_open_leads=rep.max_open_leads,
                    away=list(rep.away),
                    manager=rep.manager,
                )
            )
    return limits


def unavailable_because(
    rep: str, limits: Mapping[str, RepLimits], open_counts: Mapping[str, int], today: date
) -> str | None:
    """Why ``rep`` cannot take a new lead today (away, or at their cap), or None if they can."""
    limit = limits.get(rep)
    if limit is None:
        return None
    period = limit.away_on(today)
    if period is not None:
        return f"{rep} is away ({period})"
    if limit.max_open_leads is not None:
        held = open_counts.get(rep, 0)
        if held >= limit.max_open_leads:
            return f"{rep} is at capacity ({held}/{limit.max_open_leads} open leads)"
    return None


def choose_available(
    candidates: Sequence[str],
    turn: int,
    strategy: str,
    limits: Sequence[RepLimits],
    open_counts: Mapping[str, int],
    today: date,
    fallback_owner: str | None,
    exclude: Collection[str] = (),
) -> tuple[str | None, list[str]]:
    """The rep who gets the lead, and why others were passed over (empty when nobody was).

    Starts at the rep :func:`pick_rep` would pick (the ``turn``-th for round robin, the first
    for ``first``) and walks forward through the candidates, wrapping around, to the first one
    who is neither away today nor at their cap: one turn per assignment, never more. When every
    candidate is unavailable the first candidate's manager takes the lead if available, else
    ``fallback_owner`` takes it whatever their load or absence: a lead is never left without an
    owner. Without ``limits`` (requests from before availability existed) nobody is skipped.

    Reps in ``exclude`` (the lead's owner and whoever missed its SLA) are never chosen, not
    even as manager or fallback owner: when only they are left the answer is None.
    """
    if not candidates:
        raise ValueError("no candidate reps to pick from")
    allowed = [rep for rep in candidates if rep not in exclude]
    by_id = {limit.id: limit for limit in limits}
    reasons: list[str] = []
    start: str | None = None  # whose turn it was
    if allowed:
        index = 0 if strategy == "first" else turn % len(allowed)
        start = allowed[index]
        for step in range(len(allowed)):
            rep = allowed[(index + step) % len(allowed)]
            why = unavailable_because(rep, by_id, open_counts, today)
            if why is None:
                return rep, reasons
            if why not in reasons:  # a pool may list a rep twice
                reasons.append(why)
    first = by_id.get(candidates[0])
    manager = first.manager if first is not None else None
    if manager is not None and manager not in candidates and manager not in exclude:
        why = unavailable_because(manager, by_id, open_counts, today)
        if why is None:
            reasons.append(f"every candidate is unavailable: {manager} ({candidates[0]}'s manager)")
            return manager, reasons
        reasons.append(f"{why} ({candidates[0]}'s manager)")
    owner = fallback_owner or start
    if owner is None or owner in exclude:
        reasons.append("nobody left: the owner and everyone who missed are excluded")
        return None, reasons
    role = "the fallback owner" if fallback_owner else "whose turn it was (no fallback owner)"
    why = unavailable_because(owner, by_id, open_counts, today)
    reasons.append(
        f"every candidate is unavailable: {owner}, {role}" + (f", although {why}" if why else "")
    )
    return owner, reasons
