"""Winner rules: when an A/B-tested step's ``winner:`` rule is met (every variant sent
``after`` times, one the best on its metric with ``min_probability``), its winner is recorded
in the engine database, for good. The rules source folds the decided winners into the rules in
force, so from then on every lead gets the winner at that step (the decision is a new rules
version, in ``nurture rules history``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from sqlalchemy.engine import Engine

from nurture.domain.rules import DecidedWinner, Rules, variant_key
from nurture.domain.variant_stats import Arm, compare
from nurture.store.variant_winners import VariantResult, record_winner, variant_results

log = structlog.get_logger(__name__)
NO_RESULTS = VariantResult(sends=0, opens=0, clicks=0)


def decide_winners(engine: Engine, rules: Rules, decided: dict[str, DecidedWinner]) -> None:
    """Look at every step with a winner rule and no winner yet; record each winner whose
    rule is met (the rules source then reads every winner recorded, by any worker)."""
    for cadence in rules.cadences.cadences:
        for step in cadence.steps:
            rule = step.winner
            if rule is None or variant_key(cadence.id, step.name) in decided:
                continue
            results = variant_results(engine, cadence.id, step.name)
            found = [results.get(variant.name, NO_RESULTS) for variant in step.variants]
            if min(result.sends for result in found) < rule.after:
                continue  # the rule's threshold: no decision before it, however clear
            arms = [
                Arm(
                    variant.name,
                    result.sends,
                    result.clicks if rule.metric == "click" else result.opens,
                )
                for variant, result in zip(step.variants, found, strict=True)
            ]
            comparison = compare(arms, rule.metric, rule.min_probability, min_sends=rule.after)
            if not comparison.decided:
                continue
            winner = DecidedWinner(
                variant=comparison.leader,
                because=comparison.sentence,
                decided_at=datetime.now(UTC),
            )
            if record_winner(engine, cadence.id, step.name, winner):
                log.info(
                    "A/B winner chosen",
                    cadence=cadence.id,
                    step=step.name,
                    variant=winner.variant,
                    because=winner.because,
                )
