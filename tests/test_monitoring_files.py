"""The Grafana dashboard and Prometheus alert rules shipped in ``docs/monitoring/`` read the
series the engine exports: a renamed counter fails here, not silently on an operator's
dashboard. (The series themselves are scraped from a running ``nurture up`` in
``tests/test_cli_end_to_end.py`` and from the HTTP service in ``tests/test_service_metrics.py``.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from nurture.contract import names

MONITORING = Path(__file__).resolve().parents[1] / "docs" / "monitoring"
COUNTERS = (
    names.EVENTS_COUNTER,
    names.HANDOFFS_COUNTER,
    names.SLA_MISSES_COUNTER,
    names.EMAILS_COUNTER,
    names.FACTS_QUEUED_COUNTER,
    names.FACTS_DONE_COUNTER,
)
EXPORTED = {f"{c}_total" for c in COUNTERS} | {names.TOUCHES_HELD, names.RULES_INFO}
HISTOGRAM_SERIES = re.compile(r"_(bucket|count|sum)$")


def nurture_series(expr: str) -> set[str]:
    return set(re.findall(r"\bnurture_[a-z_]+", expr))


def test_every_alert_rule_reads_exported_series_and_says_what_to_do() -> None:
    rules = yaml.safe_load((MONITORING / "prometheus-alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {a["alert"] for a in alerts} >= {
        "NurtureSlaMissesRising",
        "NurtureTouchesHeld",
        "NurtureWorkflowTaskFailures",
        "NurtureWorkerDown",
        "NurtureReadModelBacklogGrowing",
    }
    for alert in alerts:
        assert nurture_series(alert["expr"]) <= EXPORTED, alert["alert"]
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
        assert alert["labels"]["severity"] in ("page", "ticket")


def test_the_dashboard_charts_exported_series() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = set().union(*(nurture_series(e) for e in exprs))
    assert used == EXPORTED  # every series charted, none that does not exist
    assert all(HISTOGRAM_SERIES.search(m) is None for m in used)
