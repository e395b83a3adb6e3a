"""The wall clock of the engine's own records (outside workflows, which use ``workflow.now()``)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, in UTC, with the zone: what every timestamp column of the engine holds."""
    return datetime.now(UTC)
