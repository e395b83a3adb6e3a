"""The UTC offsets time zones use, read from the tz database through ``zoneinfo``.

An ``at`` from outside must carry an offset some place has (``+05:45``, ``-03:30``): ``+05:17``
is a typo or an invented time, and taking it would date the event wrongly. The set is what
every zone of ``zoneinfo.available_timezones()`` (``tzdata``, pinned) says its offset is,
winter and summer, over the years an ``at`` may fall in, so it follows the installed tz
database and is written by nobody.
"""

from __future__ import annotations

import functools
import zoneinfo
from datetime import UTC, datetime, timedelta

YEARS = range(1995, 2041)
"""The years looked at: every year an accepted ``at`` can be in, with a margin."""
SAMPLE_DAYS = ((1, 1), (4, 1), (7, 1), (10, 1))
"""Winter and summer on both hemispheres, and the seasons between."""


@functools.cache
def real_utc_offsets() -> frozenset[timedelta]:
    """Every offset a zone of ``zoneinfo.available_timezones()`` had over :data:`YEARS`."""
    instants = [
        datetime(year, month, day, tzinfo=UTC) for year in YEARS for month, day in SAMPLE_DAYS
    ]
    offsets: set[timedelta | None] = set()
    for name in zoneinfo.available_timezones():
        zone = zoneinfo.ZoneInfo(name)
        offsets.update(instant.astimezone(zone).utcoffset() for instant in instants)
    return frozenset(offset for offset in offsets if offset is not None)


def offset_text(offset: timedelta) -> str:
    """``+05:45``, ``-03:30``: an offset as RFC 3339 writes it."""
    sign, minutes = ("-" if offset < timedelta(0) else "+"), abs(offset) // timedelta(minutes=1)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
