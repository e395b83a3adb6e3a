"""The marketing dashboard's content: the reports (funnel, SLA, returns, influence, cost) for a
period as headline tiles and plotly charts, built from the reports' rows, each cadence step's
engagement, and the companies visiting the websites now. The page and the charts API that
show it are :mod:`nurture.web.dashboard`.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import plotly.graph_objects as go
import structlog
from plotly.subplots import make_subplots
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from nurture.reports.base import Report, ReportError, ReportQuery, duration_unit, run_report
from nurture.reports.held import HeldTouch, held_touches
from nurture.reports.visiting import WINDOW, VisitingCompany, companies_visiting
from nurture.store.rules_status import RulesStatus, read_rules_status

log = structlog.get_logger(__name__)

REPORT_NAMES = ("funnel", "sla", "returns", "influence", "cost", "engagement")
NO_DATA = "No data yet for this period"

# --- what the page shows ----------------------------------------------------------------------


@dataclass
class Tile:
    id: str
    label: str
    value: str
    detail: str | None = None
    wide: bool = False


@dataclass
class Chart:
    id: str
    title: str
    caption: str
    figure: dict[str, Any]
    empty: bool
    wide: bool = False


@dataclass
class Dashboard:
    query: ReportQuery
    tiles: list[Tile] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    held_total: int = 0
    """Touches held now because their email cannot be rendered (whatever the period)."""
    held: list[HeldTouch] = field(default_factory=list)
    rules_notice: str | None = None
    """Set while the workers refuse the newest rules edit and keep sending the last good one."""
    rules_version: str | None = None
    """The rules version the workers use (None before any worker ran on this database)."""
    visiting: list[VisitingCompany] = field(default_factory=list)
    """Companies visiting the websites now (the last :data:`WINDOW`, whatever the period)."""
    engagement: list[dict[str, Any]] = field(default_factory=list)
    """The engagement report's rows: one per cadence, cycle and step (and variant)."""
    ab_tests: list[dict[str, Any]] = field(default_factory=list)
    """Its A/B tests: each tested step's variants compared on clicks and on opens."""

    @staticmethod
    def share(part: int, whole: int) -> str:
        """``1,234 (45 %)``."""
        return f"{part:,} ({part / whole:.0%})" if whole else f"{part:,}"

    @property
    def visiting_hours(self) -> int:
        return int(WINDOW.total_seconds() // 3600)

    def ago(self, moment: datetime) -> str:
        """``12 min ago`` (from when the dashboard was made)."""
        minutes = max(int((self.query.now - moment).total_seconds() // 60), 0)
        if minutes < 1:
            return "just now"
        return f"{minutes} min ago" if minutes < 60 else f"{minutes // 60} h ago"

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.query.since.isoformat() if self.query.since else None,
            "until": self.query.until.isoformat() if self.query.until else None,
            "generated_at": self.query.now.isoformat(),
            "tiles": [t.__dict__ for t in self.tiles],
            "charts": {
                c.id: {"title": c.title, "caption": c.caption, "empty": c.empty, "figure": c.figure}
                for c in self.charts
            },
            "problems": self.problems,
            "held_touches": {
                "total": self.held_total,
                "oldest": [{**h.__dict__, "since": h.since.isoformat()} for h in self.held],
            },
            "rules_notice": self.rules_notice,
            "rules_version": self.rules_version,
            "engagement": self.engagement,
            "ab_tests": self.ab_tests,
            "visiting_companies": {
                "hours": self.visiting_hours,
                "companies": [c.as_json() for c in self.visiting],
            },
        }


def build_dashboard(engine: Engine, query: ReportQuery) -> Dashboard:
    """Run the reports for ``query``'s period and turn them into tiles and charts. A
    report that cannot be made leaves its charts empty with the reason, not the page broken."""
    reports: dict[str, Report | None] = {}
    problems: list[str] = []
    for name in REPORT_NAMES:
        try:
            reports[name] = run_report(engine, name, query)
        except ReportError as exc:
            reports[name] = None
            problems.append(f"{name}: {exc}")
            log.warning("dashboard report not made", report=name, error=str(exc))
    held_total, held = held_touches(engine)
    status = rules_status(engine)
    return Dashboard(
        query=query,
        tiles=_tiles(reports),
        charts=[builder(reports) for builder in CHARTS],
        problems=problems,
        held_total=held_total,
        held=held,
        rules_notice=rules_notice(status),
        rules_version=status.version if status is not None else None,
        visiting=companies_visiting(engine, query.now),
        engagement=_rows(reports["engagement"], "steps"),
        ab_tests=_rows(reports["engagement"], "ab_tests"),
    )


def rules_status(engine: Engine) -> RulesStatus | None:
    """What the workers recorded of the rules in force (None before any worker ran here)."""
    try:
        return read_rules_status(engine)
    except SQLAlchemyError:  # the table's migration has not run on this database yet
        return None


def rules_notice(status: RulesStatus | None) -> str | None:
    """ "The last rules edit was rejected: …" while the workers keep the last good rules."""
    if status is None or not status.rejection_pending:
        return None
    problems: list[str] = list(status.rejected_problems)
    shown = "; ".join(problems[:3]) or "see 'nurture config status'"
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return (
        f"The last rules edit was rejected: {shown}{more}. Emails still go out with the "
        f"last good rules ({status.version}); 'nurture config status' lists every problem."
    )


# --- formatting -------------------------------------------------------------------------------


def _count(value: Any) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _percent(value: Any) -> str:
    return "–" if value is None else f"{value:.1%}"


def _money(value: Any, currency: str | None = None) -> str:
    if value is None:
        return "–"
    if value == 0:
        return f"{currency} 0" if currency else "0"
    amount = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    return f"{currency} {amount}" if currency else amount


def _minutes(value: float) -> str:
    return f"{value:,.0f} min" if value < 90 else f"{value / 60:,.1f} h"


def _spend(total: float | None, currency: str | None) -> str | None:
    if total is None:
        return None
    return f"total spend {_money(total, currency)}" if total else "no spend recorded"


def _summary(report: Report | None, key: str) -> Any:
    return report.summary.get(key) if report is not None else None


def _rows(report: Report | None, table: str) -> list[dict[str, Any]]:
    if report is None:
        return []
    try:
        return report.table(table).as_dicts()
    except ReportError:
        return []


def _label(value: Any) -> str:
    """A value from the data (a rep, a campaign, a reject reason a rep typed) as plain text
    for a chart. plotly.js draws a subset of HTML in every label, tick and hover (``<a href>``
    becomes a live link, ``<br>`` a line break), so markup is escaped here: every value that
    reaches a chart goes through this one function. plotly shows ``&lt;`` as ``<``."""
    text = "(none)" if value is None or value == "" else str(value)
    return html.escape(text.replace("_", " "), quote=False)


def _tiles(reports: dict[str, Report | None]) -> list[Tile]:
    funnel, sla, returns, cost = (reports[n] for n in ("funnel", "sla", "returns", "cost"))
    currency = _summary(cost, "currency")
    current = _summary(returns, "current_threshold")
    recommended = _summary(returns, "recommended_threshold")
    target = _summary(returns, "target_return_rate")
    median_minutes = _summary(sla, "median_minutes_to_response")
    return [
        Tile("leads-created", "Leads created", _count(_summary(funnel, "leads_created"))),
        Tile("handed-off", "Handed off to sales", _count(_summary(funnel, "handed_off"))),
        Tile("accepted", "Accepted by sales", _count(_summary(funnel, "accepted"))),
        Tile(
            "won",
            "Deals won",
            _count(_summary(funnel, "won")),
            f"{_count(_summary(funnel, 'lost'))} lost" if funnel is not None else None,
        ),
        Tile(
            "cost-per-deal",
            "Cost per deal",
            _money(_summary(cost, "cost_per_deal"), currency),
            _spend(_summary(cost, "cost"), currency),
        ),
        Tile(
            "sla-compliance",
            "SLA compliance",
            _percent(_summary(sla, "compliance")),
            f"median response {_minutes(median_minutes)}" if median_minutes is not None else None,
        ),
        Tile(
            "return-rate",
            "Return rate",
            _percent(_summary(returns, "return_rate")),
            f"target at most {target:.0%}" if target is not None else None,
        ),
        Tile(
            "recommended-threshold",
            "Recommended handoff threshold",
            "–" if recommended is None else str(recommended),
            _recommendation(current, recommended, _summary(returns, "recommendation")),
            wide=True,
        ),
    ]


def _recommendation(current: Any, recommended: Any, sentence: str | None) -> str | None:
    """The report's sentence (it names the current threshold when it recommends one)."""
    if not sentence:
        return None
    sentence = sentence[0].upper() + sentence[1:]
    if recommended is None and current is not None:
        return f"Now {current}. {sentence}"
    return sentence


# --- charts -----------------------------------------------------------------------------------

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
INK, MUTED, GRID = "#1f2933", "#7b8794", "#e4e7eb"
BLUE, TEAL, GREEN, AMBER, RED, GREY, PURPLE = (
    "#2f6fed",
    "#14919b",
    "#2e9d5b",
    "#f0a202",
    "#d64545",
    "#b8c2cc",
    "#7c5cd6",
)
_AXIS = {"gridcolor": GRID, "zerolinecolor": GRID, "linecolor": GRID, "automargin": True}
TEMPLATE = go.layout.Template(
    layout={
        "font": {"family": FONT, "size": 13, "color": INK},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "colorway": [BLUE, TEAL, AMBER, PURPLE, RED, GREEN],
        "xaxis": _AXIS,
        "yaxis": _AXIS,
        "hoverlabel": {"font": {"family": FONT}},
        "legend": {
            "orientation": "h",
            "x": 0,
            "y": 1.02,
            "yanchor": "bottom",
            "traceorder": "normal",
        },
        "margin": {"l": 8, "r": 8, "t": 36, "b": 8},
        "bargap": 0.25,
        "uniformtext": {"minsize": 10, "mode": "show"},
        "height": 360,
    }
)


def _figure_json(figure: go.Figure) -> dict[str, Any]:
    figure.update_layout(template=TEMPLATE)
    return json.loads(figure.to_json(validate=False))  # type: ignore[no-any-return]


def _chart(
    id: str, title: str, caption: str, figure: go.Figure | None, wide: bool = False
) -> Chart:
    """``figure`` None means there is nothing to draw: an empty plot saying so."""
    if figure is None:
        empty = go.Figure()
        empty.update_layout(
            xaxis={"visible": False},
            yaxis={"visible": False},
            height=240,
            annotations=[
                {
                    "text": NO_DATA,
                    "showarrow": False,
                    "xref": "paper",
                    "yref": "paper",
                    "x": 0.5,
                    "y": 0.5,
                    "font": {"size": 16, "color": MUTED},
                }
            ],
        )
        return Chart(id, title, caption, _figure_json(empty), empty=True, wide=wide)
    return Chart(id, title, caption, _figure_json(figure), empty=False, wide=wide)


def _funnel(reports: dict[str, Report | None]) -> Chart:
    funnel = reports["funnel"]
    steps = [
        ("Created", "leads_created"),
        ("Handed off", "handed_off"),
        ("Accepted", "accepted"),
        ("Won", "won"),
    ]
    values = [_summary(funnel, key) or 0 for _, key in steps]
    figure = None
    if any(values):
        figure = go.Figure(
            go.Funnel(
                y=[label for label, _ in steps],
                x=values,
                textinfo="value+percent initial",
                marker={"color": [BLUE, TEAL, PURPLE, GREEN]},
                connector={"fillcolor": "#eef2f7"},
                hovertemplate="%{y}: %{x:,}<br>%{percentInitial:.1%} of created"
                "<br>%{percentPrevious:.1%} of the step before<extra></extra>",
            )
        )
        figure.update_layout(yaxis={"gridcolor": "rgba(0,0,0,0)"})
    return _chart(
        "funnel",
        "Funnel",
        "Leads created in the period, and how many were handed off, accepted and won.",
        figure,
    )


UNIT_WORDS = {"s": "seconds", "min": "minutes", "h": "hours", "d": "days"}


def _time_in_stage(reports: dict[str, Report | None]) -> Chart:
    rows = [r for r in _rows(reports["funnel"], "time_in_stage") if r.get("stays")]
    figure = None
    if rows:
        longest = max((r.get("p90_hours") or r.get("median_hours") or 0) for r in rows)
        unit, seconds_per_unit = duration_unit(longest * 3600)
        per = seconds_per_unit / 3600  # hours in one unit
        stages = [_label(r["stage"]) for r in rows]
        figure = go.Figure()
        for key, name, color in (("median_hours", "median", BLUE), ("p90_hours", "p90", GREY)):
            values = [None if r.get(key) is None else r[key] / per for r in rows]
            figure.add_bar(
                x=stages,
                y=values,
                name=name,
                marker_color=color,
                customdata=[r["stays"] for r in rows],
                texttemplate="%{y:.1f}",
                textposition="outside",
                cliponaxis=False,
                hovertemplate=f"%{{x}}: {name} %{{y:.1f}} {UNIT_WORDS[unit]}"
                "<br>%{customdata:,} stays<extra></extra>",
            )
        figure.update_layout(barmode="group", yaxis_title=UNIT_WORDS[unit])
    return _chart(
        "time-in-stage",
        "Time in stage",
        "How long leads stayed in each stage before moving on: the median and the slowest "
        "tenth (p90).",
        figure,
    )


def _sla_reps(reports: dict[str, Report | None]) -> Chart:
    rows = [r for r in _rows(reports["sla"], "reps") if r.get("received")]
    figure = None
    if rows:
        reps = [_label(r["rep"]) for r in rows]
        figure = go.Figure()
        parts = (
            ("responded_in_time", "in time", GREEN),
            ("responded_late", "late", AMBER),
            ("missed", "missed", RED),
            ("open", "open", GREY),
        )
        for key, name, color in parts:
            values = [_sla_part(r, key) for r in rows]
            figure.add_bar(
                x=reps,
                y=values,
                name=name,
                marker_color=color,
                hovertemplate=f"%{{x}}: %{{y:,}} {name}<extra></extra>",
            )
        for rep, row in zip(reps, rows, strict=True):
            if row.get("compliance") is not None:
                figure.add_annotation(
                    x=rep,
                    y=row["received"],
                    text=f"{row['compliance']:.0%}",
                    showarrow=False,
                    yshift=12,
                    font={"color": INK, "size": 12},
                )
        figure.update_layout(barmode="stack", yaxis_title="leads received")
    return _chart(
        "sla-reps",
        "SLA per rep",
        "Leads each rep received and how each SLA clock ended: answered in time, late, "
        "missed (no answer before the lead moved on) or still open. Above each bar: the "
        "rep's compliance.",
        figure,
        wide=True,
    )


def _sla_part(row: dict[str, Any], key: str) -> int:
    """The rep's received leads split four ways. 'missed' are those neither answered nor
    open (reassigned away or still unanswered past the deadline)."""
    if key != "missed":
        return int(row.get(key) or 0)
    answered = (row.get("responded_in_time") or 0) + (row.get("responded_late") or 0)
    return max(int(row["received"] - answered - (row.get("open") or 0)), 0)


def _returns(reports: dict[str, Report | None]) -> Chart:
    returns = reports["returns"]
    rows = [r for r in _rows(returns, "thresholds") if r.get("return_rate") is not None]
    figure = None
    if rows:
        rows.sort(key=lambda r: r["threshold"])
        figure = go.Figure(
            go.Scatter(
                x=[r["threshold"] for r in rows],
                y=[r["return_rate"] for r in rows],
                mode="lines+markers",
                name="return rate",
                line={"color": BLUE, "width": 3},
                marker={
                    "size": 9,
                    "color": [_verdict_color(r.get("meets_target")) for r in rows],
                    "line": {"color": "#fff", "width": 1.5},
                },
                customdata=[[r.get("handoffs"), r.get("rejected")] for r in rows],
                hovertemplate="threshold %{x}: %{y:.1%} returned"
                "<br>%{customdata[1]:,} of %{customdata[0]:,} handoffs<extra></extra>",
            )
        )
        target = _summary(returns, "target_return_rate")
        if target is not None:
            figure.add_hline(
                y=target,
                line={"color": RED, "dash": "dash", "width": 1.5},
                annotation_text=f"target {target:.0%}",
                annotation_position="bottom right",
                annotation_font_color=RED,
            )
        current = _summary(returns, "current_threshold")
        recommended = _summary(returns, "recommended_threshold")
        if current is not None and current != recommended:
            figure.add_vline(
                x=current,
                line={"color": MUTED, "dash": "dot", "width": 1.5},
                annotation_text=f"now {current}",
                annotation_position="top left",
                annotation_font_color=MUTED,
            )
        if recommended is not None:
            figure.add_vline(
                x=recommended,
                line={"color": GREEN, "width": 2},
                annotation_text=f"recommended {recommended}",
                annotation_position="top right",
                annotation_font_color=GREEN,
            )
        figure.update_layout(
            showlegend=False,
            xaxis_title="handoff score threshold",
            yaxis={"title": "share returned by sales", "tickformat": ".0%", "rangemode": "tozero"},
        )
    return _chart(
        "returns",
        "Return rate by handoff threshold",
        "What share of handed-off leads sales would have returned had the handoff threshold "
        "been each score. Green: within the target; red: above it; grey: too few handoffs "
        "to tell.",
        figure,
    )


def _verdict_color(meets_target: bool | None) -> str:
    """Green within the target, red above it, grey where too few handoffs to say."""
    return GREY if meets_target is None else GREEN if meets_target else RED


def _return_reasons(reports: dict[str, Report | None]) -> Chart:
    rows = [r for r in _rows(reports["returns"], "by_reason") if r.get("rejected")]
    figure = None
    if rows:
        rows.sort(key=lambda r: r["rejected"])
        figure = go.Figure(
            go.Bar(
                x=[r["rejected"] for r in rows],
                y=[_label(r["reason"]) for r in rows],
                orientation="h",
                marker_color=AMBER,
                customdata=[r.get("share") for r in rows],
                texttemplate="%{x:,} (%{customdata:.0%})",
                textposition="auto",
                insidetextanchor="end",
                cliponaxis=False,
                hovertemplate="%{y}: %{x:,} returned (%{customdata:.0%})<extra></extra>",
            )
        )
        most = max(r["rejected"] for r in rows)
        figure.update_layout(
            xaxis={"title": "leads returned", "range": [0, most * 1.3]},
            yaxis={"ticksuffix": "  "},
            height=max(240, 80 + 40 * len(rows)),
        )
    return _chart(
        "return-reasons",
        "Why sales returned leads",
        "Reasons reps gave when returning leads to marketing.",
        figure,
    )


def _influence(reports: dict[str, Report | None]) -> Chart:
    rows = [r for r in _rows(reports["influence"], "deals") if r.get("deals")]
    figure = None
    if rows:
        # (column, title, bar label format, hover format); two-line titles fit a phone.
        metrics = (
            ("deals", "Deals<br>closed", ",.0f", ",.0f"),
            ("avg_deal_size", "Average<br>deal size", ".3~s", ",.0f"),
            ("median_days_to_close", "Median days<br>to close", ",.1f", ",.1f"),
        )
        figure = make_subplots(
            rows=1,
            cols=len(metrics),
            subplot_titles=[title for _, title, _, _ in metrics],
            horizontal_spacing=0.08,
        )
        colors = [TEAL, GREY, PURPLE, AMBER]
        for i, row in enumerate(rows):
            group = _label(row["group"])
            for col, (key, title, fmt, hover) in enumerate(metrics, start=1):
                figure.add_bar(
                    x=[group],
                    y=[row.get(key)],
                    name=group,
                    legendgroup=group,
                    showlegend=col == 1,
                    marker_color=colors[i % len(colors)],
                    texttemplate=f"%{{y:{fmt}}}",
                    textposition="outside",
                    cliponaxis=False,
                    customdata=[row.get("win_rate")],
                    hovertemplate=f"%{{fullData.name}}: {title.replace('<br>', ' ').lower()} "
                    f"%{{y:{hover}}}<br>win rate %{{customdata:.0%}}<extra></extra>",
                    row=1,
                    col=col,
                )
        figure.update_xaxes(showticklabels=False)
        figure.update_yaxes(rangemode="tozero", tickformat="~s")
        for col, (key, _, _, _) in enumerate(metrics, start=1):
            if all(row.get(key) is None for row in rows):
                _say_no_data(figure, col)
        figure.update_annotations(font_size=13)  # the subplot titles
        figure.update_layout(
            bargap=0.3,
            margin={"t": 56},
            legend={
                "orientation": "h",
                "x": 0.5,
                "xanchor": "center",
                "y": -0.04,
                "yanchor": "top",
            },
        )
    return _chart(
        "influence",
        "Marketing influence on deals",
        "Closed deals whose lead marketing nurtured, against those it did not: how many, how "
        "big and how fast they closed.",
        figure,
        wide=True,
    )


def _say_no_data(figure: go.Figure, col: int) -> None:
    """An empty subplot says so instead of drawing a made-up axis (plotly's -1..1 reads as
    ``500m``)."""
    figure.update_yaxes(visible=False, row=1, col=col)
    axis = "" if col == 1 else str(col)
    figure.add_annotation(
        text="no data yet",
        showarrow=False,
        xref=f"x{axis} domain",
        yref=f"y{axis} domain",
        x=0.5,
        y=0.5,
        font={"size": 13, "color": MUTED},
    )


def _cost(reports: dict[str, Report | None]) -> Chart:
    cost = reports["cost"]
    rows = _rows(cost, "campaigns")
    metrics = (
        ("cost_per_lead", "per lead", BLUE),
        ("cost_per_opportunity", "per opportunity", TEAL),
        ("cost_per_deal", "per deal", GREEN),
    )
    # Leads of no campaign cost nothing: nothing to divide.
    rows = [r for r in rows if r.get("cost") and any(r.get(key) for key, _, _ in metrics)]
    figure = None
    if rows:
        currency = _summary(cost, "currency")
        campaigns = [_label(r["campaign"]) for r in rows]
        values = [r[key] for r in rows for key, _, _ in metrics if r.get(key)]
        spread = max(values) / min(values) if values and min(values) > 0 else 1
        figure = go.Figure()
        for key, name, color in metrics:
            figure.add_bar(
                x=campaigns,
                y=[r.get(key) for r in rows],
                name=f"cost {name}",
                marker_color=color,
                texttemplate="%{y:.3~s}",
                textposition="outside",
                cliponaxis=False,
                customdata=[r.get("cost") for r in rows],
                hovertemplate=f"%{{x}}: %{{y:,.2f}} {name}"
                "<br>spend %{customdata:,.0f}<extra></extra>",
            )
        figure.update_layout(
            barmode="group",
            yaxis={
                "title": f"cost ({currency})" if currency else "cost",
                # Cost per deal dwarfs cost per lead: a log scale keeps both readable.
                "type": "log" if spread > 30 else "linear",
            },
        )
    return _chart(
        "cost",
        "Cost per lead, opportunity and deal by campaign",
        "Each campaign's spend in the period divided by the leads it brought, the "
        "opportunities (leads sales accepted) and the deals won.",
        figure,
        wide=True,
    )


CHARTS = (_funnel, _time_in_stage, _sla_reps, _returns, _return_reasons, _influence, _cost)
