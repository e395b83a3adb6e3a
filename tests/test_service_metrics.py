"""``GET /metrics`` of the HTTP service (issue 18): requests per route template, status class
and duration in the Prometheus format, for an operator's key only; no token or id a caller
sent ever becomes a label. (The worker's metrics are scraped from a running ``nurture up`` in
``tests/test_cli_end_to_end.py``.)"""

from __future__ import annotations

from nurture.access.dashboard_links import DashboardLinks
from tests.conftest import TEST_SECRET
from tests.web_api import Api, api

__all__ = ["api"]


async def test_an_operator_scrapes_requests_per_route_and_nothing_a_caller_typed(
    api: Api,
) -> None:
    http = api.http
    assert (await http.get("/metrics")).status_code == 401
    for role in ("ingest", "marketer", "alice"):
        assert (await http.get("/metrics", headers=api.auth(role))).status_code == 403, role

    assert (await http.get("/healthz")).status_code == 200
    dashboard = DashboardLinks(TEST_SECRET, str(http.base_url)).url()
    assert (await http.get(dashboard)).status_code == 200
    secret_path = "/no-such-page/ada@example.com/{{7*7}}"
    assert (await http.get(secret_path)).status_code == 404

    scraped = await http.get("/metrics", headers=api.auth("operator"))
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    assert 'http_requests_total{handler="/healthz",method="GET",status="2xx"} 1.0' in text
    assert 'handler="/dashboard/{token}"' in text  # the route, not the signed link
    token = dashboard.rsplit("/", 1)[-1]
    for typed in (token, "ada@example.com", "no-such-page", "7*7"):
        assert typed not in text, typed
    assert "http_request_duration_seconds_bucket" in text
    assert 'handler="/metrics"' not in text  # scrapes do not count themselves
    spec = (await http.get("/openapi.json")).json()
    assert "/metrics" not in spec["paths"]
