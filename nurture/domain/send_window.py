"""When a marketing email may go out: send windows, frequency caps and the lead's time zone.

Marketers write, in YAML::

    send_window: {days: [mon, tue, wed, thu, fri], start: "08:00", end: "18:00"}
    send_window: anytime
    frequency_cap: {max_emails: 2, per: 7d}

A window is wall-clock time in the *lead's* zone (``resolve_zone``); ``next_send_time`` finds
the earliest instant at or after ``now`` that is inside the window and under the cap. Everything
here is pure and deterministic (no clock, no I/O beyond zoneinfo's cached zone data): it runs
inside Temporal workflows, which pass ``now`` in. Zone data comes from the system or, where the
system has none (slim containers, Windows), from the ``tzdata`` package, a dependency.
"""

from __future__ import annotations

import re
import zoneinfo
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

from nurture.domain.durations import Duration, format_duration

# Every worker must decide a deferral the same way, or a replay on another host fails: time
# zones come from the pinned ``tzdata`` package, never from whatever the host has installed.
zoneinfo.reset_tzpath(to=[])

__all__ = [
    "ANYTIME",
    "DAY_NAMES",
    "FrequencyCap",
    "SendDecision",
    "SendWindow",
    "describe",
    "next_send_time",
    "resolve_zone",
]

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
"""Short day names, index 0 = Monday as in ``datetime.weekday()``."""

_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_LOOKUP = {name.lower(): i for i, name in enumerate(DAY_NAMES)} | {
    name: i for i, name in enumerate(_FULL_NAMES)
}
_DAY_GROUPS = {
    "weekdays": (0, 1, 2, 3, 4),
    "weekends": (5, 6),
    "every_day": (0, 1, 2, 3, 4, 5, 6),
    "everyday": (0, 1, 2, 3, 4, 5, 6),
    "daily": (0, 1, 2, 3, 4, 5, 6),
}
_DAYS_HELP = (
    "use mon, tue, wed, thu, fri, sat, sun (or full names), a range such as 'mon-fri', "
    "or 'weekdays', 'weekends' or 'every_day'"
)
_ANYTIME_WORDS = {"anytime", "any_time", "any time", "always"}
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_MIDNIGHT = time(0)


# --- parsing config values ----------------------------------------------------------------


def _parse_days(value: Any) -> tuple[int, ...]:
    """Normalise YAML days (names, ranges, groups or 0–6) to sorted unique weekday numbers."""
    if isinstance(value, str):
        items: Iterable[Any] = value.split(",")
    elif isinstance(value, list | tuple | set | frozenset):
        items = value
    else:
        raise ValueError(f"days: expected a list of days, got {value!r}; {_DAYS_HELP}")
    days = sorted({day for item in items for day in _parse_day_item(item)})
    if not days:
        raise ValueError(f"days: name at least one day; {_DAYS_HELP}")
    return tuple(days)


def _parse_day_item(item: Any) -> tuple[int, ...]:
    if isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 6:
        return (item,)  # the serialised form: 0 = Monday
    if not isinstance(item, str):
        raise ValueError(f"unknown day {item!r}; {_DAYS_HELP}")
    word = item.strip().lower().replace(" ", "_")
    if word in _DAY_GROUPS:
        return _DAY_GROUPS[word]
    first, dash, last = word.replace("–", "-").partition("-")
    if dash:
        return _day_range(_day_number(first, item), _day_number(last, item))
    return (_day_number(word, item),)


def _day_number(word: str, item: str) -> int:
    try:
        return _DAY_LOOKUP[word.strip()]
    except KeyError:
        raise ValueError(f"unknown day {item.strip()!r}; {_DAYS_HELP}") from None


def _day_range(first: int, last: int) -> tuple[int, ...]:
    """``fri-mon`` wraps over the weekend: Fri, Sat, Sun, Mon."""
    return tuple((first + i) % 7 for i in range((last - first) % 7 + 1))


def _parse_time(value: Any, *, end: bool) -> time:
    """Read a wall-clock time; ``24:00`` (stored as 00:00) is allowed only as an end.

    Unquoted ``8:00`` reaches us as the integer 480: YAML 1.1 reads ``H:MM`` as a base-60
    number. Integers are therefore taken as minutes after midnight, 60–1440, which is exactly
    what such a YAML value can be; anything else must be quoted.
    """
    if isinstance(value, time):
        if value.tzinfo is not None:
            raise ValueError("a send window time has no zone of its own (the lead's zone applies)")
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 60 <= value <= 24 * 60:
        hours, minutes = divmod(value, 60)
        return _checked_time(hours, minutes, 0, end=end, text=f"{hours}:{minutes:02d}")
    if isinstance(value, str) and (match := _TIME.match(value.strip())):
        hours, minutes, seconds = (int(part or 0) for part in match.groups())
        return _checked_time(hours, minutes, seconds, end=end, text=value.strip())
    raise ValueError(
        f"expected a time of day such as '08:00' or '18:30' (quoted in YAML), got {value!r}"
    )


def _checked_time(hours: int, minutes: int, seconds: int, *, end: bool, text: str) -> time:
    if (hours, minutes, seconds) == (24, 0, 0):
        if not end:
            raise ValueError("'24:00' can only be the end of a send window; start at '00:00'")
        return _MIDNIGHT
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"{text!r} is not a time of day (use 00:00 to 23:59, or 24:00 as end)")
    return time(hours, minutes, seconds)


def _format_time(value: time, *, end: bool = False) -> str:
    if end and value == _MIDNIGHT:
        return "24:00"
    if value.second or value.microsecond:
        return value.isoformat()
    return value.strftime("%H:%M")


def _parse_start(value: Any) -> time:
    return _parse_time(value, end=False)


def _parse_end(value: Any) -> time:
    return _parse_time(value, end=True)


_Days = Annotated[tuple[int, ...], BeforeValidator(_parse_days)]
_Start = Annotated[
    time, BeforeValidator(_parse_start), PlainSerializer(_format_time, return_type=str)
]
_End = Annotated[
    time,
    BeforeValidator(_parse_end),
    PlainSerializer(lambda t: _format_time(t, end=True), return_type=str),
]


# --- the config models --------------------------------------------------------------------


class _Strict(BaseModel):
    # Same settings as ``_Strict`` in nurture.domain.rules (which imports this module, hence the
    # copy):
    # validate_default + revalidate make defaults go through the loader's time scale too.
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, revalidate_instances="always"
    )


class SendWindow(_Strict):
    """Days and wall-clock hours, in the lead's zone, when an email may go out.

    ``end`` is exclusive; an ``end`` of 00:00 (written ``"24:00"``) means the end of the day.
    A window cannot run past midnight. The YAML string ``anytime`` is every day, all day.
    """

    days: _Days = Field(default=(0, 1, 2, 3, 4), description="weekdays, 0 = Monday")
    start: _Start = time(8, 0)
    end: _End = time(18, 0)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            if data.strip().lower() in _ANYTIME_WORDS:
                return {"days": "every_day", "start": "00:00", "end": "24:00"}
            raise ValueError(
                f"a send window is 'anytime' or a mapping with days, start and end; got {data!r}"
            )
        return data

    @model_validator(mode="after")
    def _starts_before_end(self) -> SendWindow:
        if not self.ends_at_midnight and self.start >= self.end:
            raise ValueError(
                f"send window start ({_format_time(self.start)}) must be before its end "
                f"({_format_time(self.end, end=True)}); a window cannot run past midnight, "
                "end it at '24:00' instead"
            )
        return self

    @classmethod
    def anytime(cls) -> SendWindow:
        """Every day, 00:00–24:00: the window that never defers."""
        return cls.model_validate("anytime")

    @property
    def ends_at_midnight(self) -> bool:
        return self.end == _MIDNIGHT

    def contains(self, local: datetime) -> bool:
        """Whether a wall-clock time (already in the lead's zone) is inside the window."""
        if local.weekday() not in self.days:
            return False
        wall = local.time()  # drops tzinfo and fold: only the wall clock counts
        return self.start <= wall and (self.ends_at_midnight or wall < self.end)


ANYTIME = SendWindow.anytime()


class FrequencyCap(_Strict):
    """At most ``max_emails`` marketing emails to a lead in any ``per`` (a sliding window)."""

    max_emails: int = Field(ge=1, le=50, description="the lead keeps its last 50 send times")
    per: Duration

    @model_validator(mode="after")
    def _positive_period(self) -> FrequencyCap:
        if self.per <= timedelta(0):
            raise ValueError("frequency cap 'per' must be longer than zero")
        return self


# --- describing ---------------------------------------------------------------------------


def describe(window: SendWindow | None) -> str:
    """A window as a marketer reads it: ``"Mon–Fri 08:00–18:00"``."""
    if window is None or (
        len(window.days) == 7 and window.start == _MIDNIGHT and window.ends_at_midnight
    ):
        return "any time"
    hours = f"{_format_time(window.start)}–{_format_time(window.end, end=True)}"
    return f"{_describe_days(window.days)} {hours}"


def _describe_days(days: tuple[int, ...]) -> str:
    if len(days) == 7:
        return "every day"
    present = set(days)
    parts: list[str] = []
    for first in days:
        if (first - 1) % 7 in present:
            continue  # inside a run that starts earlier (possibly wrapping past Sunday)
        length = 1
        while (first + length) % 7 in present:
            length += 1
        run = [DAY_NAMES[(first + i) % 7] for i in range(length)]
        parts.append(f"{run[0]}–{run[-1]}" if length >= 3 else ", ".join(run))
    return ", ".join(parts)


def _describe_duration(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        count, rest = divmod(seconds, size)
        if count and not rest:
            return f"{int(count)} {unit}{'' if count == 1 else 's'}"
    return format_duration(delta)


def _zone_name(zone: tzinfo) -> str:
    return getattr(zone, "key", None) or str(zone)


def _local_label(instant: datetime, zone: tzinfo) -> str:
    return f"{instant.astimezone(zone):%a %d %b %H:%M %Z}"


# --- time zones ---------------------------------------------------------------------------


def resolve_zone(name: str | None, default: str = "UTC") -> tuple[ZoneInfo, str | None]:
    """The lead's IANA zone, or ``default`` when it has none or an unknown one.

    The note (second item) is set only when a given name was not a known zone, so the
    timeline can say why the lead is emailed on ``default``'s clock. An unknown ``default``
    is a configuration error and raises ``ValueError``.
    """
    fallback = _zone(default)
    if fallback is None:
        raise ValueError(f"default time zone {default!r} is not an IANA time zone")
    if name is None or not name.strip():
        return fallback, None
    zone = _zone(name.strip())
    if zone is None:
        return fallback, f"unknown time zone {name!r}; using {default}"
    return zone, None


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: malformed keys such as "../x"
        return None


# --- the decision -------------------------------------------------------------------------


@dataclass(frozen=True)
class SendDecision:
    """When to send (UTC) and, if that is later than asked, why (for the lead's timeline)."""

    at: datetime
    reasons: tuple[str, ...] = ()

    @property
    def deferred(self) -> bool:
        return bool(self.reasons)


_HORIZON = timedelta(days=400)
_PROBE = timedelta(hours=3)
"""Offset probes step this far, so two offset changes within 3 hours would go unseen; in the
tz database (checked: tzdata 2026) a zone's offset changes are at least 7 days apart."""
_TICK = timedelta(microseconds=1)


def next_send_time(
    now: datetime,
    window: SendWindow | None,
    zone: ZoneInfo,
    recent_sends: Sequence[datetime],
    cap: FrequencyCap | None,
) -> SendDecision:
    """The earliest instant ``>= now`` inside ``window`` (wall clock in ``zone``) at which
    fewer than ``cap.max_emails`` of ``recent_sends`` fall in ``(at - cap.per, at]``.

    Alternates the two constraints until both hold. Each step jumps to the earliest instant at
    which the failing constraint can hold, so nothing in between can satisfy both, and the
    result is exact. It terminates: every cap step retires one more send for good, and every
    window step is followed by a cap step or the answer. ``window=None`` / ``cap=None`` mean
    no constraint. Naive datetimes raise ``ValueError``; the result is in UTC.
    """
    start = _as_utc(now, "now")
    sends = sorted(_as_utc(sent, "a recent send") for sent in recent_sends)
    at = start
    reasons: dict[str, str] = {}  # first reason of each kind, in the order they happened
    for _ in range(2 * len(sends) + 3):
        if window is not None and (opening := _next_opening(at, window, zone)) != at:
            reasons.setdefault("window", _window_reason(window, zone, at, at == start))
            at = opening
            continue
        blocking = _blocking_sends(at, sends, cap)
        if cap is None or not blocking:
            return SendDecision(at, tuple(reasons.values()))
        release = blocking[0] + cap.per
        reasons.setdefault("cap", _cap_reason(cap, blocking, release, zone))
        at = release
    raise ValueError(f"no send time found after {start.isoformat()} (window and cap disagree)")


def _as_utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _blocking_sends(
    at: datetime, sends: list[datetime], cap: FrequencyCap | None
) -> list[datetime]:
    """The ``max_emails`` most recent sends in ``(at - per, at]`` if they fill the cap, else
    nothing. The oldest of them leaving the window (at ``oldest + per``) frees a slot."""
    if cap is None:
        return []
    newest = bisect_right(sends, at)
    oldest = bisect_right(sends, at - cap.per)
    if newest - oldest < cap.max_emails:
        return []
    return sends[newest - cap.max_emails : newest]


def _next_opening(at: datetime, window: SendWindow, zone: tzinfo) -> datetime:
    """The earliest instant ``>= at`` whose wall clock in ``zone`` is inside ``window``.

    While the UTC offset is constant, wall time is UTC plus that offset, so the opening is
    computed on the wall clock and then confirmed: if the offset changes before it, no instant
    before the change qualified either, and the search resumes at the change. That gives the
    DST rules: in a spring-forward gap the window opens at the first real instant after the
    jump (the first one whose wall time is past ``start``); in a fall-back overlap the first
    occurrence of a wall time comes first, and a repeated wall-clock hour that is inside the
    window is inside it both times.
    """
    cursor = at
    while cursor - at <= _HORIZON:
        offset = _offset(cursor, zone)
        candidate = _opening_at_offset(cursor, offset, window)
        if candidate is None:
            break
        change = _first_offset_change(cursor, candidate, offset, zone)
        if change is None:
            return candidate
        cursor = change
    raise ValueError(
        f"send window {describe(window)} does not open within {_HORIZON.days} days after "
        f"{at.isoformat()} in {_zone_name(zone)}"
    )


def _opening_at_offset(cursor: datetime, offset: timedelta, window: SendWindow) -> datetime | None:
    """The first instant ``>= cursor`` inside ``window`` if the offset never changed."""
    wall = (cursor + offset).replace(tzinfo=None)
    for ahead in range(8):
        day = wall.date() + timedelta(days=ahead)
        if day.weekday() not in window.days:
            continue
        opens, closes = _day_bounds(day, window)
        if wall < closes:
            return (max(opens, wall) - offset).replace(tzinfo=UTC)
    return None


def _day_bounds(day: date, window: SendWindow) -> tuple[datetime, datetime]:
    closes_on = day + timedelta(days=1) if window.ends_at_midnight else day
    return datetime.combine(day, window.start), datetime.combine(closes_on, window.end)


def _first_offset_change(
    after: datetime, until: datetime, offset: timedelta, zone: tzinfo
) -> datetime | None:
    """The first instant in ``(after, until]`` whose UTC offset is not ``offset``, if any."""
    low = after
    while low < until:
        high = min(low + _PROBE, until)
        if _offset(high, zone) != offset:
            while high - low > _TICK:  # bisect to the microsecond: exact for any zone data
                middle = low + (high - low) // 2
                if _offset(middle, zone) == offset:
                    low = middle
                else:
                    high = middle
            return high
        low = high
    return None


def _offset(instant: datetime, zone: tzinfo) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None, "a time zone always has an offset for an aware instant"
    return offset


def _window_reason(window: SendWindow, zone: tzinfo, at: datetime, is_now: bool) -> str:
    local = at.astimezone(zone)
    verb = "it is" if is_now else "it would be"
    return (
        f"outside send window {describe(window)} {_zone_name(zone)} ({verb} {local:%a %H:%M} there)"
    )


def _cap_reason(
    cap: FrequencyCap, blocking: list[datetime], release: datetime, zone: tzinfo
) -> str:
    sends = ", ".join(_local_label(sent, zone) for sent in blocking)
    last = "last send" if len(blocking) == 1 else "last sends"
    return (
        f"frequency cap {cap.max_emails} per {_describe_duration(cap.per)} reached "
        f"({last} {sends}; a slot frees up {_local_label(release, zone)})"
    )
