"""Who gets a sales-ready lead: territory rules, round robin within a pool, fallback owner."""

from __future__ import annotations

from pydantic import BaseModel

from nurture.leads import LeadProfile
from nurture.matching import condition_holds
from nurture.rules import RoutingRules


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
