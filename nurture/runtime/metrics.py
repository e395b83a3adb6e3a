"""Where a worker serves its Prometheus metrics: the Temporal SDK's own (workflow and activity
task latencies, slots, the sticky cache) and Nurture's (``nurture.contract.names``), on one
endpoint that the SDK's runtime serves (no exposition format written here).

``NURTURE_METRICS_PORT`` (default 9464; ``off`` for none) on ``NURTURE_METRICS_HOST`` (default
127.0.0.1: the series hold no personal data, but counts of a business; open it to the
network that scrapes it)."""

from __future__ import annotations

import os

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

DEFAULT_METRICS_PORT = 9464


def metrics_address_from_env() -> str | None:
    """``host:port`` to serve metrics on, or None when switched off."""
    port = os.environ.get("NURTURE_METRICS_PORT", str(DEFAULT_METRICS_PORT)).strip()
    if port.lower() in ("", "0", "off", "none"):
        return None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"NURTURE_METRICS_PORT: expected a port (1-65535) or 'off', got {port!r}")
    host = os.environ.get("NURTURE_METRICS_HOST", "127.0.0.1").strip() or "127.0.0.1"
    return f"{host}:{port}"


def metrics_runtime(address: str) -> Runtime:
    """A Temporal runtime serving ``/metrics`` on ``address``; ``ValueError`` naming the address
    when it cannot be bound (another process has the port)."""
    try:
        prometheus = PrometheusConfig(
            bind_address=address,
            counters_total_suffix=True,  # nurture_events_total, temporal_request_total
            durations_as_seconds=True,  # Prometheus' base unit (the SDK's default is ms)
        )
        return Runtime(telemetry=TelemetryConfig(metrics=prometheus))
    except ValueError as exc:
        raise ValueError(f"metrics on {address}: {exc} (set NURTURE_METRICS_PORT)") from exc
