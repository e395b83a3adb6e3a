"""How an A/B test stands: which variant is best on clicks or opens, and how sure we can be.

Each variant's rate gets a Beta posterior (a uniform prior updated with its successes and
failures: scipy's ``beta``); the probability that a variant is the best is the integral, over
its rate, of its density times the chance every other variant's rate is lower (scipy's
``quad``), so two or more variants are compared the same way. The answer is said plainly for
marketers ("b beats a on clicks, 97 % probability, 1,240 sends each") or, when the evidence is
short of the bar, "not enough evidence yet". scipy (0.7 s to import) is imported at the first
comparison, not with this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nurture.domain.rules import Metric

MIN_SENDS_EACH = 30
"""Fewer sends of any variant than this is never enough evidence, whatever the probability."""
DEFAULT_MIN_PROBABILITY = 0.95
_TAIL = 1e-12  # a posterior's mass left outside the integration range


@dataclass(frozen=True)
class Arm:
    """One variant's emails sent and how many of them were clicked (or opened)."""

    name: str
    sends: int
    successes: int

    @property
    def rate(self) -> float:
        return self.successes / self.sends if self.sends else 0.0


@dataclass(frozen=True)
class Comparison:
    metric: Metric
    arms: list[Arm]
    probabilities: list[float]
    """Each arm's probability of being the best, in the order of ``arms`` (summing to 1)."""
    leader: str
    probability: float
    decided: bool
    """The leader is the winner: every arm has the sends asked for, and the probability."""
    sentence: str


def probabilities_best(arms: Sequence[Arm]) -> list[float]:
    """For each arm, the probability that its true rate is the highest."""
    from scipy import integrate, stats

    posteriors = [stats.beta(1 + a.successes, 1 + max(a.sends - a.successes, 0)) for a in arms]
    found = []
    for index, posterior in enumerate(posteriors):
        others = posteriors[:index] + posteriors[index + 1 :]

        def best_here(rate: float, posterior: Any = posterior, others: list[Any] = others) -> float:
            density = float(posterior.pdf(rate))
            return density * math.prod(float(other.cdf(rate)) for other in others)

        low, high = float(posterior.ppf(_TAIL)), float(posterior.isf(_TAIL))
        value, _ = integrate.quad(best_here, low, high, points=[posterior.mean()], limit=200)
        found.append(max(value, 0.0))
    total = sum(found)
    return [p / total for p in found] if total > 0 else [1 / len(arms)] * len(arms)


def compare(
    arms: Sequence[Arm],
    metric: Metric,
    min_probability: float = DEFAULT_MIN_PROBABILITY,
    min_sends: int = MIN_SENDS_EACH,
) -> Comparison:
    """Which of two or more ``arms`` is best on ``metric``, and whether the evidence is
    enough: every arm sent at least ``min_sends`` times and the leader at least
    ``min_probability`` likely to be the best."""
    if len(arms) < 2:
        raise ValueError("a comparison needs two or more variants")
    probabilities = probabilities_best(arms)
    lead = max(range(len(arms)), key=lambda i: (probabilities[i], arms[i].rate))
    leader, probability = arms[lead], probabilities[lead]
    others = [a.name for a in arms if a is not leader]
    sends = _sends_text([leader, *(a for a in arms if a is not leader)])
    measured = f"{metric}s"
    enough_sends = min(a.sends for a in arms) >= max(min_sends, 1)
    decided = enough_sends and probability >= min_probability
    if decided:
        sentence = (
            f"{leader.name} beats {_joined(others)} on {measured}, "
            f"{_percent(probability)} probability, {sends}"
        )
    elif not enough_sends:
        sentence = f"not enough evidence yet: {sends}, {min_sends:,} each needed"
    else:
        ordered = [leader, *(a for a in arms if a is not leader)]
        rates = " vs ".join(f"{a.rate * 100:.1f} %" for a in ordered)
        sentence = (
            f"not enough evidence yet: {leader.name} leads on {measured} ({rates}), "
            f"{_percent(probability)} probability ({_percent(min_probability)} needed), {sends}"
        )
    return Comparison(
        metric, list(arms), probabilities, leader.name, probability, decided, sentence
    )


def _percent(probability: float) -> str:
    """Rounded down, so "100 %" is never said of a probability short of certainty."""
    if probability >= 0.999:
        return "over 99.9 %"
    return f"{math.floor(probability * 100 + 1e-9)} %"


def _sends_text(arms: Sequence[Arm]) -> str:
    """``1,240 sends each``, or each variant's own: ``1,240 sends of b, 1,198 of a``."""
    counts = [a.sends for a in arms]
    if len(set(counts)) == 1:
        return f"{counts[0]:,} sends each"
    first, *rest = arms
    return ", ".join(
        [f"{first.sends:,} sends of {first.name}", *(f"{a.sends:,} of {a.name}" for a in rest)]
    )


def _joined(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
