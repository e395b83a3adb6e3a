"""Which version of an A/B-tested email step a lead gets.

The draw is a hash of the lead, the cadence and the step, placed on the variants' weights: the
same lead always lands on the same variant under the same weights, with no randomness a replay
could not repeat. A lead's draws are kept in its state (``LeadState.variants``) the first time
it enrols in the cadence, so a marketer who changes the weights later moves only the leads that
enrol after the change: a lead already in the cadence keeps the email it was meant to get, and
the comparison between variants stays fair. A decided winner rule is the one exception: it
sends its winner to everyone from then on (``Rules.winner_of``).
"""

from __future__ import annotations

import hashlib

from nurture.domain.rules import Cadence, CadenceStep, variant_key

_SCALE = 2**64


def draw_variant(lead_id: str, cadence_id: str, step: CadenceStep) -> str | None:
    """The variant of ``step`` the lead gets under its current weights (None: no A/B test)."""
    if not step.variants:
        return None
    digest = hashlib.sha256(f"{lead_id}\0{cadence_id}\0{step.name}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") * sum(v.weight for v in step.variants) // _SCALE
    for variant in step.variants:
        if point < variant.weight:
            return variant.name
        point -= variant.weight
    raise AssertionError("a point below the total weight falls on a variant")


def draws_for(lead_id: str, cadence: Cadence, kept: dict[str, str]) -> dict[str, str]:
    """The draws to add to ``kept`` for the A/B steps of ``cadence`` the lead has none for."""
    fresh: dict[str, str] = {}
    for step in cadence.steps:
        key = variant_key(cadence.id, step.name)
        if key not in kept and (drawn := draw_variant(lead_id, cadence.id, step)) is not None:
            fresh[key] = drawn
    return fresh
