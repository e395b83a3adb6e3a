"""Lead scoring as plain functions: behaviour points, fit points, decay, grades, readiness.

Pure and deterministic (no clock, no I/O): the workflow passes ``now``. Every point given or
taken is kept as a :class:`ScoreEntry` and tallied per rule, so a score can always be explained.
"""

from __future__ import annotations

from datetime import datetime
from fnmatch import fnmatch

from pydantic import BaseModel, Field

from nurture.domain.leads import LaterFieldsOmitted, LeadEvent, LeadProfile
from nurture.domain.matching import condition_holds
from nurture.domain.rules import DecayPolicy, Grade, ScoringRules, UrlRule

RECENT_ENTRIES_KEPT = 40


class ScoreEntry(BaseModel):
    at: datetime
    rule: str
    points: int
    event_type: str | None = None
    detail: str | None = None


class RuleTally(BaseModel):
    points: int = 0
    count: int = 0


class DecayTick(BaseModel):
    """One decay period charged since the lead's last activity: when, and the points taken."""

    at: datetime
    points: int


class ScoreCard(LaterFieldsOmitted):
    """The lead's score with its explanation. ``total`` = fit + behaviour."""

    LATER_FIELDS = ("decay_ticks",)

    fit_points: int = 0
    fit_matches: dict[str, int] = Field(default_factory=dict)
    behaviour_points: int = 0
    tallies: dict[str, RuleTally] = Field(default_factory=dict)
    recent: list[ScoreEntry] = Field(default_factory=list)
    last_activity_at: datetime | None = None
    last_visit_at: datetime | None = None
    last_decay_at: datetime | None = None
    decay_ticks: list[DecayTick] = Field(default_factory=list)
    """The decay charged since ``last_activity_at``, tick by tick (kept only by runs that
    refund it: see :func:`refund_decay`)."""

    @property
    def total(self) -> int:
        return self.fit_points + self.behaviour_points

    def with_entries(self, entries: list[ScoreEntry]) -> ScoreCard:
        tallies = dict(self.tallies)
        points = self.behaviour_points
        for entry in entries:
            old = tallies.get(entry.rule, RuleTally())
            tallies[entry.rule] = RuleTally(points=old.points + entry.points, count=old.count + 1)
            points += entry.points
        recent = (self.recent + entries)[-RECENT_ENTRIES_KEPT:]
        return self.model_copy(
            update={"behaviour_points": points, "tallies": tallies, "recent": recent}
        )


def score_event(
    card: ScoreCard, event: LeadEvent, rules: ScoringRules, now: datetime
) -> tuple[ScoreCard, list[ScoreEntry]]:
    """Apply one behaviour to the card; return the new card and the entries it produced."""
    at = event.at or now
    kind = event.type
    entries: list[ScoreEntry] = []
    url_rule = _url_rule(event, rules)
    if url_rule is not None and url_rule.points is not None:
        entries.append(
            ScoreEntry(
                at=at,
                rule=url_rule.label,
                points=url_rule.points,
                event_type=kind,
                detail=event.url,
            )
        )
    else:
        if url_rule is not None and url_rule.behaviour:
            kind = url_rule.behaviour
        points = rules.behaviours.get(kind)
        if points is None:
            rule = "instant qualify" if kind in rules.instant_qualify else f"unscored {kind}"
            entries.append(
                ScoreEntry(at=at, rule=rule, points=0, event_type=kind, detail=event.url)
            )
        else:
            entries.append(
                ScoreEntry(at=at, rule=kind, points=points, event_type=kind, detail=event.url)
            )
    last_visit = card.last_visit_at
    if event.type == "page_view":
        is_return = (
            last_visit is not None
            and at - last_visit >= rules.return_visit_after
            and "return_visit" in rules.behaviours
        )
        if is_return:
            entries.append(
                ScoreEntry(
                    at=at,
                    rule="return_visit",
                    points=rules.behaviours["return_visit"],
                    event_type="return_visit",
                    detail=event.url,
                )
            )
        last_visit = at if last_visit is None else max(last_visit, at)
    updated = card.with_entries(entries)
    last_activity = at if card.last_activity_at is None else max(card.last_activity_at, at)
    ticks = card.decay_ticks if last_activity == card.last_activity_at else []
    return (
        updated.model_copy(
            update={
                "last_activity_at": last_activity,
                "last_visit_at": last_visit,
                "decay_ticks": ticks,
            }
        ),
        entries,
    )


def _url_rule(event: LeadEvent, rules: ScoringRules) -> UrlRule | None:
    if not event.url:
        return None
    url = event.url.lower()
    return next(
        (r for r in rules.url_rules if r.event == event.type and fnmatch(url, r.pattern.lower())),
        None,
    )


def fit_score(profile: LeadProfile, rules: ScoringRules) -> tuple[int, dict[str, int]]:
    """Points for who the lead is, with the fit rules that matched."""
    fields = profile.fields()
    matches = {r.name: r.points for r in rules.fit if condition_holds(r.when, fields)}
    return sum(matches.values()), matches


def with_fit(card: ScoreCard, profile: LeadProfile, rules: ScoringRules) -> ScoreCard:
    points, matches = fit_score(profile, rules)
    return card.model_copy(update={"fit_points": points, "fit_matches": matches})


def grade(card: ScoreCard, rules: ScoringRules) -> Grade:
    """A–D from fit alone: how good a customer the lead would be, whatever it has done."""
    for band in rules.grades:
        if card.fit_points >= band.min_fit:
            return band.grade
    return rules.grades[-1].grade


def is_sales_ready(card: ScoreCard, rules: ScoringRules) -> bool:
    return card.total >= rules.sales_ready_threshold


def qualifies_instantly(event: LeadEvent, rules: ScoringRules) -> bool:
    return event.type in rules.instant_qualify


def _decay_ticks(
    card: ScoreCard, policy: DecayPolicy, now: datetime
) -> tuple[int, datetime | None]:
    """(ticks due up to ``now`` and not yet applied, time of the latest due tick)."""
    if card.last_activity_at is None:
        return 0, None
    start = card.last_activity_at + policy.inactive_after
    if now < start:
        return 0, None
    ticks_total = int((now - start) / policy.every) + 1
    applied = 0
    if card.last_decay_at is not None and card.last_decay_at >= start:
        applied = int((card.last_decay_at - start) / policy.every) + 1
    return max(0, ticks_total - applied), start + (ticks_total - 1) * policy.every


def apply_decay(
    card: ScoreCard, policy: DecayPolicy | None, now: datetime, *, keep_ticks: bool = False
) -> tuple[ScoreCard, list[ScoreEntry]]:
    """Take away the points inactivity has cost since the last decay; never below the floor.
    ``keep_ticks``: note each period's loss on the card, so that it can be refunded."""
    if policy is None:
        return card, []
    due, latest_tick = _decay_ticks(card, policy, now)
    if due == 0 or latest_tick is None:
        return card, []
    loss = min(due * policy.points, max(0, card.behaviour_points - policy.floor))
    entries = (
        [
            ScoreEntry(
                at=latest_tick,
                rule="decay",
                points=-loss,
                detail=f"{due} period(s) without activity",
            )
        ]
        if loss > 0
        else []
    )
    ticks = card.decay_ticks
    if keep_ticks:
        left, first = loss, latest_tick - (due - 1) * policy.every
        number = 0
        while left > 0:  # the periods that took points (the rest stopped at the floor)
            taken = min(policy.points, left)
            ticks = [*ticks, DecayTick(at=first + number * policy.every, points=taken)]
            left, number = left - taken, number + 1
    return card.with_entries(entries).model_copy(
        update={"last_decay_at": latest_tick, "decay_ticks": ticks}
    ), entries


def refund_decay(
    card: ScoreCard, policy: DecayPolicy | None, active_at: datetime
) -> tuple[ScoreCard, list[ScoreEntry]]:
    """Undo the decay charged for periods after ``active_at``: an activity told late (a
    website visit handed over on identification) shows the lead was not inactive then. The
    periods are charged again, from the new last activity, when they come due."""
    last, charged_to = card.last_activity_at, card.last_decay_at
    if policy is None or last is None or charged_to is None or active_at <= last:
        return card, []
    if charged_to <= active_at:
        return card, []
    start = last + policy.inactive_after
    still = (
        None if active_at < start else start + ((active_at - start) // policy.every) * policy.every
    )
    refunded = [tick for tick in card.decay_ticks if tick.at > active_at]
    kept = [tick for tick in card.decay_ticks if tick.at <= active_at]
    points = sum(tick.points for tick in refunded)
    entries = (
        [
            ScoreEntry(
                at=active_at,
                rule="decay",
                points=points,
                detail=f"{len(refunded)} period(s) refunded: active after all",
            )
        ]
        if points
        else []
    )
    return card.with_entries(entries).model_copy(
        update={"decay_ticks": kept, "last_decay_at": still}
    ), entries


def next_decay_at(card: ScoreCard, policy: DecayPolicy | None) -> datetime | None:
    """When the next decay tick is due, or None when decay cannot lower the score further."""
    if policy is None or card.last_activity_at is None:
        return None
    if card.behaviour_points <= policy.floor:
        return None
    start = card.last_activity_at + policy.inactive_after
    if card.last_decay_at is None or card.last_decay_at < start:
        return start
    applied = int((card.last_decay_at - start) / policy.every) + 1
    return start + applied * policy.every


def reset_behaviour(
    card: ScoreCard, now: datetime, reason: str
) -> tuple[ScoreCard, list[ScoreEntry]]:
    """Zero the behaviour points (a recycled lead must earn sales-readiness again)."""
    if card.behaviour_points == 0:
        return card, []
    entries = [
        ScoreEntry(at=now, rule="recycle reset", points=-card.behaviour_points, detail=reason)
    ]
    return card.with_entries(entries), entries


def explain(card: ScoreCard) -> list[tuple[str, int, int]]:
    """(rule, points, times) for every rule that contributed, biggest effect first."""
    rows = [(f"fit: {name}", points, 1) for name, points in card.fit_matches.items()]
    rows += [(rule, t.points, t.count) for rule, t in card.tallies.items() if t.points or t.count]
    return sorted(rows, key=lambda r: -abs(r[1]))
