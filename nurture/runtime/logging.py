"""structlog set-up, done once by each entry point: JSON in production, pretty on a terminal.

Standard-library records (Temporal's ``workflow.logger`` and ``activity.logger``) go through the
same pipeline, so workflow logs carry lead and workflow ids in the same format.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(api[_-]?key|authorization|password|secret|token)", re.I)
_SENDGRID_KEY = re.compile(r"SG\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}")
_BEARER = re.compile(r"(Bearer\s+)[^\s'\"]+", re.I)
_NURTURE_KEY = re.compile(r"(nk_[a-z0-9]{10}_)[A-Za-z0-9_-]{8,}")  # nurture.access.auth API keys


def redact_secrets(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Never let an API key or token reach a log line, whatever key it hides under."""
    for key, value in list(event_dict.items()):
        if _SECRET_KEYS.search(key):
            event_dict[key] = "***"
        elif isinstance(value, str):
            value = _SENDGRID_KEY.sub("SG.***", value)
            event_dict[key] = _NURTURE_KEY.sub(r"\1***", _BEARER.sub(r"\1***", value))
    return event_dict


def configure_logging(level: str | None = None, json_logs: bool | None = None) -> None:
    """``NURTURE_LOG_FORMAT=json|pretty`` and ``NURTURE_LOG_LEVEL`` override the defaults."""
    level_name = (level or os.environ.get("NURTURE_LOG_LEVEL", "INFO")).upper()
    if json_logs is None:
        chosen = os.environ.get("NURTURE_LOG_FORMAT")
        json_logs = chosen == "json" if chosen else not sys.stderr.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json_logs:
        # The traceback as text under "exception" (the console renders its own). Without it
        # the JSON encoder meets the traceback object and falls back to a lazy import: inside
        # the workflow sandbox (the SDK logs a failed activation from there) that import is
        # refused, and the record is lost. Before redact_secrets, so tracebacks are redacted.
        shared.append(structlog.processors.format_exc_info)
    shared.append(redact_secrets)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_logs
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        # Extras first: what a standard-library record carries is redacted too.
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_name)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
