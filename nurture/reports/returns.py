"""``returns``: handoffs sales sent back, why, per score band, and the handoff threshold the
history supports.

A return is a handoff sales rejected. The return rate is rejected / decided handoffs, where a
decided handoff is one sales accepted, rejected, won or lost: an ``open`` one is counted as a
handoff but is no evidence yet either way. Instant handoffs ("requested a call") count in every
figure except the threshold table: a threshold does not stop them.

The recommendation is history-based: for each candidate threshold T (each score band's lower
bound) it replays the non-instant handoffs scoring T or more and recommends the lowest T whose
return rate meets the target with at least ``min_handoffs`` decided handoffs behind it. It can
only speak for scores that were handed off: it never recommends a threshold below the lowest
score handed off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from nurture.domain.rules_diff import threshold_of
from nurture.reports.base import Report, ReportQuery, ReportTable, new_report, ratio, report
from nurture.store.read_model import HandoffRecord
from nurture.store.rules_history import rules_history

DECIDED = ("accepted", "rejected", "won", "lost")
NO_REASON = "(no reason given)"


@dataclass(frozen=True)
class Band:
    band: int
    handoffs: int
    rejected: int
    decided: int
    # non-instant handoffs scoring ``band`` or more: what threshold ``band`` would have kept
    kept: int
    kept_rejected: int
    kept_decided: int
    has_scored: bool  # this band holds non-instant handoffs (so it is a candidate threshold)
    lowest_scored: int | None  # lowest non-instant score in this band


def _count(condition: ColumnElement[bool]) -> Any:
    return func.count(case((condition, 1)))


def _bands(engine: Engine, query: ReportQuery) -> list[Band]:
    """Per score band: handoffs, returns, decided; and, with window sums from the top band
    down, the non-instant handoffs each band's lower bound would have kept as a threshold."""
    width = query.band_width
    score = col(HandoffRecord.score)
    # floor(score / width) * width, also for a negative score (% truncates towards zero)
    band = score - ((score % width) + width) % width
    base = (
        select(
            band.label("band"),
            score.label("score"),
            col(HandoffRecord.status).label("status"),
            col(HandoffRecord.instant).label("instant"),
        )
        .where(query.in_period(HandoffRecord.at))
        .subquery()
    )
    rejected = base.c.status == "rejected"
    decided = base.c.status.in_(DECIDED)
    scored = base.c.instant == false()
    per_band = (
        select(
            base.c.band,
            func.count().label("handoffs"),
            _count(rejected).label("rejected"),
            _count(decided).label("decided"),
            _count(scored).label("scored"),
            _count(and_(scored, rejected)).label("scored_rejected"),
            _count(and_(scored, decided)).label("scored_decided"),
            func.min(case((scored, base.c.score))).label("lowest_scored"),
        )
        .group_by(base.c.band)
        .subquery()
    )
    from_top = per_band.c.band.desc()
    rows = (
        select(
            per_band,
            func.sum(per_band.c.scored).over(order_by=from_top).label("kept"),
            func.sum(per_band.c.scored_rejected).over(order_by=from_top).label("kept_rejected"),
            func.sum(per_band.c.scored_decided).over(order_by=from_top).label("kept_decided"),
        )
        .order_by(per_band.c.band)
        .subquery()
    )
    with engine.connect() as conn:
        result = conn.execute(select(rows)).mappings().all()
    return [
        Band(
            band=int(r["band"]),
            handoffs=int(r["handoffs"]),
            rejected=int(r["rejected"]),
            decided=int(r["decided"]),
            kept=int(r["kept"]),
            kept_rejected=int(r["kept_rejected"]),
            kept_decided=int(r["kept_decided"]),
            has_scored=int(r["scored"]) > 0,
            lowest_scored=None if r["lowest_scored"] is None else int(r["lowest_scored"]),
        )
        for r in result
    ]


def _reasons(engine: Engine, query: ReportQuery) -> list[tuple[str, int]]:
    reason = func.coalesce(func.nullif(func.trim(col(HandoffRecord.reject_reason)), ""), NO_REASON)
    rejected = (
        select(reason.label("reason"))
        .where(query.in_period(HandoffRecord.at), col(HandoffRecord.status) == "rejected")
        .subquery()
    )
    statement = select(rejected.c.reason, func.count()).group_by(rejected.c.reason)
    with engine.connect() as conn:
        found = [(str(r), int(n)) for r, n in conn.execute(statement)]
    # ordered here (few rows): the same order whatever the database's collation
    return sorted(found, key=lambda rn: (-rn[1], rn[0]))


def _current_threshold(engine: Engine) -> int | None:
    """The threshold in force at the latest handoff ever made (not only in the period: it is
    the one a recommendation would change)."""
    statement = (
        select(col(HandoffRecord.threshold))
        .order_by(col(HandoffRecord.at).desc(), col(HandoffRecord.key).desc())
        .limit(1)
    )
    with engine.connect() as conn:
        value = conn.execute(statement).scalar()
    return None if value is None else int(value)


def _label(band: int, width: int) -> str:
    # "to", not "-": a band of negative scores would read "-30--21".
    return str(band) if width == 1 else f"{band} to {band + width - 1}"


def _percent(value: float, target: float | None = None) -> str:
    """A whole percentage, with decimals when rounding would make it read as the target."""
    text = f"{value:.0%}"
    if target is not None and value != target and text == f"{target:.0%}":
        return f"{value:.2%}"
    return text


def _recommend(
    candidates: list[Band], query: ReportQuery, current: int | None, lowest_scored: int | None
) -> tuple[int | None, str]:
    target = query.target_return_rate
    needed = query.min_handoffs
    if not candidates or lowest_scored is None:
        return None, (
            "no threshold can be recommended: no handoff in this period was made on score "
            "(none, or only instant ones)"
        )
    evidence = [c for c in candidates if c.kept_decided >= needed]
    if not evidence:
        most = candidates[0].kept_decided  # the lowest threshold keeps the most handoffs
        return None, (
            f"too few handoffs to recommend a threshold: {most} handed off on score in this "
            f"period had a decision from sales (accepted, rejected, won or lost), and at least "
            f"{needed} are needed; widen the period or wait for sales to work the open ones"
        )
    meeting = [c for c in evidence if c.kept_rejected / c.kept_decided <= target]
    if not meeting:
        best = min(evidence, key=lambda c: (c.kept_rejected / c.kept_decided, -c.band))
        best_rate = _percent(best.kept_rejected / best.kept_decided, target)
        return None, (
            f"no threshold meets the target: even handoffs scoring {max(best.band, lowest_scored)}"
            f"+ were returned {best_rate} of the time (target {_percent(target)}) over "
            f"{best.kept_decided} handoffs"
            + _unproven(candidates, target, needed)
            + "; look at why sales returns them rather than at the score"
        )
    chosen = meeting[0]
    # below the lowest score handed off there is no history: thresholds under it keep the same
    # handoffs, so the lowest one the history speaks for is that score
    threshold = max(chosen.band, lowest_scored)
    if current is not None and chosen is candidates[0] and current <= lowest_scored:
        # Every handoff on record already clears the current threshold and the target is met
        # from the lowest band up: nothing in the history argues for a raise.
        threshold = current
    rate = _percent(chosen.kept_rejected / chosen.kept_decided, target)
    evidence_text = (
        f"handoffs scoring {threshold}+ were returned {rate} of the time "
        f"(target {_percent(target)}) over {chosen.kept_decided} handoffs"
    )
    if current is None or threshold == current:
        return threshold, f"keep the threshold at {threshold}: {evidence_text}"
    verb = "raise" if threshold > current else "lower"
    return threshold, f"{verb} the threshold from {current} to {threshold}: {evidence_text}"


def _unproven(candidates: list[Band], target: float, needed: int) -> str:
    """The lowest threshold that would meet the target but has too few decisions behind it."""
    for c in candidates:
        if 0 < c.kept_decided < needed and c.kept_rejected / c.kept_decided <= target:
            rate = _percent(c.kept_rejected / c.kept_decided, target)
            return (
                f" (handoffs scoring {c.band}+ did, at {rate}, but only {c.kept_decided} of them "
                f"had a decision: {needed} needed)"
            )
    return ""


@report("returns", "Returned leads")
def returns_report(engine: Engine, query: ReportQuery) -> Report:
    width = query.band_width
    bands = _bands(engine, query)
    reasons = _reasons(engine, query)
    current = _current_threshold(engine)

    handed_off = sum(b.handoffs for b in bands)
    rejected = sum(b.rejected for b in bands)
    decided = sum(b.decided for b in bands)
    candidates = [b for b in bands if b.has_scored]
    lowest = min((b.lowest_scored for b in candidates if b.lowest_scored is not None), default=None)
    instant = handed_off - (candidates[0].kept if candidates else 0)
    recommended, sentence = _recommend(candidates, query, current, lowest)

    def meets(b: Band) -> bool | None:
        if b.kept_decided < query.min_handoffs:
            return None
        return b.kept_rejected / b.kept_decided <= query.target_return_rate

    tables = [
        ReportTable(
            name="by_reason",
            title="Why sales returned handoffs",
            columns=["reason", "rejected", "share"],
            rows=[[reason, n, ratio(n, rejected)] for reason, n in reasons],
        ),
        ReportTable(
            name="by_band",
            title=f"Returns per score band (width {width})",
            columns=["band", "handoffs", "rejected", "return_rate"],
            rows=[
                [_label(b.band, width), b.handoffs, b.rejected, ratio(b.rejected, b.decided)]
                for b in bands
            ],
        ),
        ReportTable(
            name="thresholds",
            title="What each threshold would have kept (instant handoffs excluded)",
            columns=["threshold", "handoffs", "rejected", "return_rate", "meets_target"],
            rows=[
                [
                    b.band,
                    b.kept,
                    b.kept_rejected,
                    ratio(b.kept_rejected, b.kept_decided),
                    meets(b),
                ]
                for b in candidates
            ],
        ),
        ReportTable(
            name="threshold_timeline",
            title="Each threshold in force: when it was set, by whom, and its returns",
            columns=[
                "threshold",
                "set_at",
                "set_by",
                "changed_from",
                "first_handoff",
                "handoffs",
                "rejected",
                "return_rate",
            ],
            rows=_threshold_timeline(engine, query),
        ),
    ]
    notes = [
        "Return rate = rejected / handoffs sales decided on (accepted, rejected, won or lost); "
        f"open handoffs ({handed_off - decided} here) count as handoffs but are not evidence yet.",
        f"The thresholds table leaves out instant handoffs ({instant} here): an instant-qualify "
        "behaviour such as requesting a call hands the lead off whatever the threshold.",
        "meets_target is empty where a threshold kept fewer than "
        f"{query.min_handoffs} decided handoffs: too little evidence to say.",
        "The recommendation is based on history: it can only judge scores that were handed off, "
        "so it never recommends a threshold below the lowest score handed off"
        + (f" ({lowest})." if lowest is not None else "."),
    ]
    return new_report(
        "returns",
        query,
        summary={
            "handed_off": handed_off,
            "rejected": rejected,
            "decided": decided,
            "return_rate": ratio(rejected, decided),
            "current_threshold": current,
            "recommended_threshold": recommended,
            "target_return_rate": query.target_return_rate,
            "recommendation": sentence,
        },
        tables=tables,
        notes=notes,
    )


def _threshold_timeline(engine: Engine, query: ReportQuery) -> list[list[Any]]:
    """Per threshold the leads were handed off under (non-instant handoffs of the period, in
    the order the thresholds came): when the rules history saw it set, by whom, from what."""
    decided = col(HandoffRecord.status).in_(DECIDED)
    rejected = col(HandoffRecord.status) == "rejected"
    grouped = (
        select(
            col(HandoffRecord.threshold),
            func.min(HandoffRecord.at).label("first"),
            func.count().label("handoffs"),
            _count(rejected).label("rejected"),
            _count(decided).label("decided"),
        )
        .where(query.in_period(HandoffRecord.at), col(HandoffRecord.instant) == false())
        .group_by(col(HandoffRecord.threshold))
        .order_by(func.min(HandoffRecord.at))
    )
    with engine.connect() as conn:
        rows = conn.execute(grouped).all()
    set_when = _threshold_changes(engine)
    timeline = []
    for threshold, first, handoffs, n_rejected, n_decided in rows:
        change = set_when.get(threshold)
        timeline.append(
            [
                threshold,
                change.first_loaded_at.isoformat() if change else None,
                change.author if change else None,
                threshold_of(change.previous_snapshot) if change else None,
                first.isoformat() if first else None,
                handoffs,
                n_rejected,
                ratio(n_rejected, n_decided),
            ]
        )
    return timeline


@dataclass(frozen=True)
class _Change:
    first_loaded_at: Any
    author: str
    previous_snapshot: dict[str, str]


def _threshold_changes(engine: Engine) -> dict[int, _Change]:
    """Each threshold value's latest setting in the rules history (a version whose threshold
    differs from the version before it, or the first version recorded)."""
    changes: dict[int, _Change] = {}
    history = list(reversed(rules_history(engine)))  # oldest first
    previous: dict[str, str] = {}
    for version in history:
        now = threshold_of(version.snapshot)
        if now is not None and now != threshold_of(previous):
            changes[now] = _Change(version.first_loaded_at, version.author, previous)
        previous = version.snapshot
    return changes
