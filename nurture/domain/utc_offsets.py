"""The UTC offsets time zones have ever used, read from the tz database (``tzdata``).

An ``at`` from outside must carry an offset some place has had (``+05:45``, ``-03:30``):
``+05:17`` is a typo or an invented time, and taking it would date the event wrongly. The set
is computed from the database's compiled zone files, not written by hand, so it follows the
``tzdata`` release installed. Standard, summer and historical offsets (local mean time
included) all count: a time in 1999 Nepal is still a real time.
"""

from __future__ import annotations

import functools
import struct
import zoneinfo
from datetime import timedelta
from importlib import resources

_HEADER = struct.Struct(">4s1s15x6l")  # magic, version, six counts (RFC 8536, section 3.1)
_OFFSET = struct.Struct(">l")
_TYPE_SIZE = 6  # a local time type: utoff (4 bytes), isdst, desigidx


@functools.cache
def real_utc_offsets() -> frozenset[timedelta]:
    """Every offset any zone of ``zoneinfo.available_timezones()`` has used."""
    offsets: set[int] = set()
    zone_files = resources.files("tzdata").joinpath("zoneinfo")
    for name in zoneinfo.available_timezones():
        zone_file = zone_files.joinpath(*name.split("/"))
        if zone_file.is_file():  # the system's own names (``localtime``) alias tzdata's zones
            offsets.update(_offsets_in(zone_file.read_bytes()))
    return frozenset(timedelta(seconds=seconds) for seconds in offsets)


def _offsets_in(tzif: bytes) -> list[int]:
    """The offsets (seconds) of a TZif file's local time types, in its version 1 block and,
    from version 2 on, the 64-bit block after it (tzdata's slim files keep them only there)."""
    offsets, end = _block_offsets(tzif, 0, time_size=4)
    if tzif[4:5] >= b"2":
        offsets += _block_offsets(tzif, end, time_size=8)[0]
    return offsets


def _block_offsets(tzif: bytes, at: int, time_size: int) -> tuple[list[int], int]:
    """The offsets of the data block whose header starts at ``at``, and where the block ends."""
    _magic, _version, isut, isstd, leaps, times, types, chars = _HEADER.unpack_from(tzif, at)
    first_type = at + _HEADER.size + times * (time_size + 1)
    offsets = [_OFFSET.unpack_from(tzif, first_type + n * _TYPE_SIZE)[0] for n in range(types)]
    end = first_type + types * _TYPE_SIZE + chars + leaps * (time_size + 4) + isstd + isut
    return offsets, end


def offset_text(offset: timedelta) -> str:
    """``+05:45``, ``-03:30``: an offset as RFC 3339 writes it."""
    sign, minutes = ("-" if offset < timedelta(0) else "+"), abs(offset) // timedelta(minutes=1)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
