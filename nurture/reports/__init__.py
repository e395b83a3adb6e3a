"""Reports on the read model: funnel, SLA, returns, influence, cost (see ``base``)."""

from nurture.reports import cost, funnel, influence, returns, sla  # noqa: F401  (registers them)
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
