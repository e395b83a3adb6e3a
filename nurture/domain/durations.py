"""Human durations in config files: ``"90s"``, ``"4h"``, ``"3d"``, ``"2w"``, ``"1h30m"``.

Marketers write durations as short strings; workflows need ``timedelta``. Values that already
went through pydantic's own serialisation (ISO 8601, e.g. ``"PT4H"``) or plain seconds are
accepted too, so rules survive a round trip through Temporal's data converter.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
)

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w)\s*)+$")


def parse_duration(value: Any) -> timedelta:
    """Parse a config duration; raise ``ValueError`` that says what form is expected."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '90s', '4h', '3d' or '2w', got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"a duration must be a finite number of seconds, got {value!r}")
        return _seconds(value)
    if isinstance(value, str) and _WHOLE.match(value):
        return _seconds(sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(value)))
    if isinstance(value, str) and value.startswith("P"):
        try:
            return TypeAdapter(timedelta).validate_python(value)  # ISO 8601, e.g. "PT4H"
        except ValidationError:
            pass
    raise ValueError(
        f"expected a duration such as '90s', '4h', '3d', '2w' or '1h30m', got {value!r}"
    )


def _seconds(seconds: float) -> timedelta:
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"a duration of {seconds:g} seconds is too long") from None


def format_duration(delta: timedelta) -> str:
    """Render a duration the way a marketer would write it (``"1d4h"``)."""
    seconds = delta.total_seconds()
    if seconds == 0:
        return "0s"
    parts: list[str] = []
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        count = int(seconds // size)
        if count:
            parts.append(f"{count}{unit}")
            seconds -= count * size
    if seconds >= 0.001:
        parts.append(f"{round(seconds * 1000)}ms")
    return "".join(parts)


def _parse_scaled(value: Any, info: ValidationInfo) -> timedelta:
    """Parse, then divide by the load-time ``time_scale`` (demos run a week in minutes).

    The scale comes from the validation context, which only the YAML loader sets: rules that
    round-trip through Temporal are already scaled and are not scaled again. Defaults are
    validated too (see ``_Strict`` in :mod:`nurture.domain.rules`), so they scale like written
    values.
    """
    delta = parse_duration(value)
    scale = (info.context or {}).get("time_scale", 1.0)
    return delta / scale if scale != 1.0 else delta


Duration = Annotated[
    timedelta,
    BeforeValidator(_parse_scaled),
    PlainSerializer(lambda d: d.total_seconds(), return_type=float),
]
"""A ``timedelta`` field written in config as ``"4h"`` and serialised as seconds."""
