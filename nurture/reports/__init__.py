"""Reports on the read model: funnel, SLA, returns, influence, cost, engagement (see ``base``)."""

from nurture.reports import (  # noqa: F401  (registers them)
    cost,
    engagement,
    funnel,
    influence,
    returns,
    sla,
)
from nurture.reports.base import (
    REPORTS,
    Report,
    ReportError,
    ReportQuery,
    ReportTable,
    run_report,
    to_csv,
)

__all__ = ["REPORTS", "Report", "ReportError", "ReportQuery", "ReportTable", "run_report", "to_csv"]
