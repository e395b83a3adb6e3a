"""Send windows, frequency caps and lead time zones: when a marketing touch may go out.

Dates used (2026): Sat 7 Mar, Mon 9 Mar; US DST starts Sun 8 Mar (02:00 EST -> 03:00 EDT) and
ends Sun 1 Nov (02:00 EDT -> 01:00 EST); EU DST starts Sun 29 Mar (02:00 CET -> 03:00 CEST)
and ends Sun 25 Oct (03:00 CEST -> 02:00 CET).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from nurture.domain.send_window import (
    ANYTIME,
    FrequencyCap,
    SendDecision,
    SendWindow,
    describe,
    next_send_time,
    resolve_zone,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = SendWindow()  # Mon–Fri 08:00–18:00
EVERY_DAY = "every_day"


def window(days: object = "weekdays", start: object = "08:00", end: object = "18:00") -> SendWindow:
    return SendWindow.model_validate({"days": days, "start": start, "end": end})


def local(at: datetime, zone: ZoneInfo) -> str:
    """Wall time, zone abbreviation and fold of an instant in a zone.

    Needed for the repeated hour: per PEP 495, an aware datetime whose offset depends on
    ``fold`` never compares equal to one in another zone, so ``==`` cannot check it.
    """
    wall = at.astimezone(zone)
    return f"{wall:%a %H:%M %Z} fold={wall.fold}"


def send_at(now: datetime, zone: ZoneInfo, win: SendWindow | None = WEEKDAYS) -> SendDecision:
    return next_send_time(now, win, zone, [], None)


# --- the send window ----------------------------------------------------------------------


def test_a_touch_due_saturday_night_in_berlin_goes_monday_morning_berlin_time():
    decision = send_at(datetime(2026, 3, 7, 2, 0, tzinfo=BERLIN), BERLIN)
    assert decision.at == datetime(2026, 3, 9, 8, 0, tzinfo=BERLIN)
    assert decision.at.tzinfo is UTC
    assert decision.reasons == (
        "outside send window Mon–Fri 08:00–18:00 Europe/Berlin (it is Sat 02:00 there)",
    )
    assert decision.deferred


def test_a_touch_due_tuesday_night_in_new_york_goes_at_eight_new_york_time():
    now = datetime(2026, 3, 3, 2, 0, tzinfo=NEW_YORK)
    assert send_at(now, NEW_YORK).at == datetime(2026, 3, 3, 8, 0, tzinfo=NEW_YORK)


def test_the_lead_zone_decides_not_the_zone_now_is_written_in():
    now = datetime(2026, 3, 3, 7, 0, tzinfo=UTC)  # 08:00 in Berlin, 02:00 in New York
    assert send_at(now, BERLIN).at == now
    assert send_at(now, NEW_YORK).at == datetime(2026, 3, 3, 13, 0, tzinfo=UTC)


def test_inside_the_window_the_touch_goes_now_without_reasons():
    now = datetime(2026, 3, 3, 11, 17, 42, 5, tzinfo=BERLIN)
    assert send_at(now, BERLIN) == SendDecision(now.astimezone(UTC), ())
    assert not send_at(now, BERLIN).deferred


def test_the_window_start_is_inclusive():
    now = datetime(2026, 3, 3, 8, 0, tzinfo=BERLIN)
    assert send_at(now, BERLIN).at == now


def test_the_window_end_is_exclusive():
    now = datetime(2026, 3, 3, 18, 0, tzinfo=BERLIN)
    assert send_at(now, BERLIN).at == datetime(2026, 3, 4, 8, 0, tzinfo=BERLIN)


def test_friday_evening_waits_for_monday_morning():
    now = datetime(2026, 3, 6, 18, 30, tzinfo=BERLIN)
    assert send_at(now, BERLIN).at == datetime(2026, 3, 9, 8, 0, tzinfo=BERLIN)


def test_no_window_and_the_anytime_window_never_defer():
    now = datetime(2026, 3, 7, 2, 0, tzinfo=BERLIN)
    assert send_at(now, BERLIN, None) == SendDecision(now.astimezone(UTC), ())
    assert send_at(now, BERLIN, ANYTIME) == SendDecision(now.astimezone(UTC), ())


def test_a_window_to_midnight_includes_the_last_minute_of_the_day():
    late = window(EVERY_DAY, "20:00", "24:00")
    now = datetime(2026, 3, 3, 23, 59, 59, tzinfo=BERLIN)
    assert send_at(now, BERLIN, late).at == now
    assert late.contains(datetime(2026, 3, 3, 23, 59, 59, 999999))
    assert not late.contains(datetime(2026, 3, 4, 0, 0))


def test_contains_reads_the_wall_clock_and_the_weekday():
    assert WEEKDAYS.contains(datetime(2026, 3, 3, 8, 0))
    assert WEEKDAYS.contains(datetime(2026, 3, 3, 17, 59, 59, tzinfo=NEW_YORK))
    assert not WEEKDAYS.contains(datetime(2026, 3, 3, 18, 0))
    assert not WEEKDAYS.contains(datetime(2026, 3, 7, 12, 0))  # Saturday


# --- daylight saving time -----------------------------------------------------------------


def test_spring_forward_gap_opens_at_the_first_real_instant_after_the_jump_new_york():
    # 02:30 does not exist on 8 Mar in New York: the clock jumps from 02:00 EST to 03:00 EDT.
    early = window(EVERY_DAY, "02:30", "05:00")
    decision = send_at(datetime(2026, 3, 8, 0, 0, tzinfo=NEW_YORK), NEW_YORK, early)
    assert decision.at == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    assert decision.at.astimezone(NEW_YORK).strftime("%H:%M %Z") == "03:00 EDT"


def test_spring_forward_gap_opens_at_the_first_real_instant_after_the_jump_berlin():
    early = window(EVERY_DAY, "02:15", "06:00")
    decision = send_at(datetime(2026, 3, 29, 1, 0, tzinfo=BERLIN), BERLIN, early)
    assert decision.at == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert decision.at.astimezone(BERLIN).strftime("%H:%M %Z") == "03:00 CEST"


def test_a_window_wholly_inside_the_gap_does_not_exist_that_day():
    lost = window(EVERY_DAY, "02:00", "02:30")
    decision = send_at(datetime(2026, 3, 8, 0, 0, tzinfo=NEW_YORK), NEW_YORK, lost)
    assert decision.at == datetime(2026, 3, 9, 2, 0, tzinfo=NEW_YORK)
    assert decision.at == datetime(2026, 3, 9, 6, 0, tzinfo=UTC)


def test_the_window_follows_the_wall_clock_across_a_dst_weekend():
    now = datetime(2026, 3, 6, 18, 30, tzinfo=NEW_YORK)  # Friday, EST
    decision = send_at(now, NEW_YORK)
    assert decision.at == datetime(2026, 3, 9, 12, 0, tzinfo=UTC)  # Monday 08:00 EDT


def test_fall_back_overlap_opens_at_the_first_occurrence():
    # 25 Oct in Berlin: 02:00–03:00 happens twice, first CEST (fold=0) then CET (fold=1).
    night = window(EVERY_DAY, "02:30", "06:00")
    decision = send_at(datetime(2026, 10, 24, 20, 0, tzinfo=BERLIN), BERLIN, night)
    assert decision.at == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert local(decision.at, BERLIN) == "Sun 02:30 CEST fold=0"


def test_fall_back_overlap_second_occurrence_when_the_first_is_past():
    night = window(EVERY_DAY, "02:30", "06:00")
    now = datetime(2026, 10, 25, 2, 10, fold=1, tzinfo=BERLIN)  # 02:10 CET, the second pass
    decision = send_at(now, BERLIN, night)
    assert decision.at == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert local(decision.at, BERLIN) == "Sun 02:30 CET fold=1"


def test_a_repeated_hour_inside_the_window_is_inside_it_both_times():
    # 1 Nov in New York: 01:00–02:00 EDT, then 01:00–02:00 EST again. The window ends 01:30.
    sunday_night = window("sun", "00:00", "01:30")
    first_pass_after_end = datetime(2026, 11, 1, 1, 45, fold=0, tzinfo=NEW_YORK)
    decision = send_at(first_pass_after_end, NEW_YORK, sunday_night)
    assert decision.at == datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
    assert local(decision.at, NEW_YORK) == "Sun 01:00 EST fold=1"
    inside_second_pass = datetime(2026, 11, 1, 1, 20, fold=1, tzinfo=NEW_YORK)
    assert send_at(inside_second_pass, NEW_YORK, sunday_night).at == datetime(
        2026, 11, 1, 6, 20, tzinfo=UTC
    )


# --- the frequency cap --------------------------------------------------------------------

THURSDAY = datetime(2026, 3, 5, 10, 0, tzinfo=BERLIN)
TWO_A_WEEK = FrequencyCap(max_emails=2, per="7d")


def test_the_cap_defers_until_the_older_send_is_a_week_old():
    sends = [THURSDAY - timedelta(days=1), THURSDAY - timedelta(days=3)]
    decision = next_send_time(THURSDAY, WEEKDAYS, BERLIN, sends, TWO_A_WEEK)
    assert decision.at == datetime(2026, 3, 9, 10, 0, tzinfo=BERLIN)  # Mon 2 Mar + 7 days
    assert decision.reasons == (
        "frequency cap 2 per 7 days reached (last sends Mon 02 Mar 10:00 CET, "
        "Wed 04 Mar 10:00 CET; a slot frees up Mon 09 Mar 10:00 CET)",
    )


def test_a_cap_release_at_night_is_realigned_into_the_window():
    sends = [THURSDAY - timedelta(days=1), datetime(2026, 3, 2, 5, 30, tzinfo=BERLIN)]
    decision = next_send_time(THURSDAY, WEEKDAYS, BERLIN, sends, TWO_A_WEEK)
    assert decision.at == datetime(2026, 3, 9, 8, 0, tzinfo=BERLIN)
    cap_reason, window_reason = decision.reasons
    assert cap_reason.startswith("frequency cap 2 per 7 days reached (last sends Mon 02 Mar")
    assert window_reason == (
        "outside send window Mon–Fri 08:00–18:00 Europe/Berlin (it would be Mon 05:30 there)"
    )


def test_a_window_opening_can_still_be_capped():
    saturday = datetime(2026, 3, 7, 12, 0, tzinfo=BERLIN)
    one_a_day = FrequencyCap(max_emails=1, per="1d")
    sends = [datetime(2026, 3, 8, 20, 0, tzinfo=BERLIN)]  # Sunday evening (sent by hand)
    decision = next_send_time(saturday, WEEKDAYS, BERLIN, sends, one_a_day)
    # Mon 08:00 is capped until Mon 20:00, which is after hours: Tuesday 08:00.
    assert decision.at == datetime(2026, 3, 10, 8, 0, tzinfo=BERLIN)
    assert [r.split(" ")[0] for r in decision.reasons] == ["outside", "frequency"]


def test_the_cap_interval_is_half_open():
    week_ago = THURSDAY - timedelta(days=7)
    assert (
        next_send_time(THURSDAY, None, BERLIN, [week_ago], FrequencyCap(max_emails=1, per="7d")).at
        == THURSDAY
    )
    capped = next_send_time(
        THURSDAY, None, BERLIN, [THURSDAY], FrequencyCap(max_emails=1, per="7d")
    )
    assert capped.at == THURSDAY + timedelta(days=7)
    assert capped.reasons[0].startswith("frequency cap 1 per 7 days reached (last send Thu 05")


def test_under_the_cap_the_touch_goes_now():
    sends = [THURSDAY - timedelta(days=1), THURSDAY - timedelta(days=9)]
    assert next_send_time(THURSDAY, WEEKDAYS, BERLIN, sends, TWO_A_WEEK).at == THURSDAY


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        next_send_time(datetime(2026, 3, 5, 10, 0), WEEKDAYS, BERLIN, [], None)
    with pytest.raises(ValueError, match="a recent send must be timezone-aware"):
        next_send_time(THURSDAY, WEEKDAYS, BERLIN, [datetime(2026, 3, 4)], TWO_A_WEEK)


def test_an_empty_window_built_around_validation_fails_clearly_instead_of_looping():
    never = SendWindow.model_construct(days=(), start=time(8), end=time(18))
    with pytest.raises(ValueError, match="does not open within 400 days"):
        send_at(THURSDAY, BERLIN, never)


# --- time zones ---------------------------------------------------------------------------


def test_a_known_zone_is_used():
    assert resolve_zone("America/New_York") == (NEW_YORK, None)
    assert resolve_zone(" Europe/Berlin ") == (BERLIN, None)


@pytest.mark.parametrize("missing", [None, "", "   "])
def test_a_missing_zone_falls_back_quietly(missing):
    assert resolve_zone(missing) == (ZoneInfo("UTC"), None)
    assert resolve_zone(missing, default="Europe/Berlin") == (BERLIN, None)


@pytest.mark.parametrize("unknown", ["Mars/Base", "../etc/passwd", "/usr/share/zoneinfo/UTC"])
def test_an_unknown_zone_falls_back_with_a_note(unknown):
    zone, note = resolve_zone(unknown)
    assert zone == ZoneInfo("UTC")
    assert note == f"unknown time zone {unknown!r}; using UTC"


def test_the_note_names_the_default_it_used():
    assert resolve_zone("Mars/Base", "Europe/Berlin") == (
        BERLIN,
        "unknown time zone 'Mars/Base'; using Europe/Berlin",
    )


def test_an_unknown_default_zone_is_a_config_error():
    with pytest.raises(ValueError, match="'Mars/Base' is not an IANA time zone"):
        resolve_zone("Europe/Berlin", default="Mars/Base")


# --- config parsing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ("weekdays", (0, 1, 2, 3, 4)),
        ("weekends", (5, 6)),
        ("every_day", (0, 1, 2, 3, 4, 5, 6)),
        ("Every Day", (0, 1, 2, 3, 4, 5, 6)),
        (["mon", "WED", "Friday"], (0, 2, 4)),
        (["sun", "sat", "sun"], (5, 6)),
        (["mon-wed", "sat"], (0, 1, 2, 5)),
        ("fri-mon", (0, 4, 5, 6)),
        ("Mon–Fri", (0, 1, 2, 3, 4)),
        ("mon, thursday", (0, 3)),
        (["weekends", "mon"], (0, 5, 6)),
        ([0, 6], (0, 6)),
    ],
)
def test_days_are_read_the_way_marketers_write_them(days, expected):
    assert window(days).days == expected


@pytest.mark.parametrize(
    ("days", "fragment"),
    [
        (["mon", "funday"], "unknown day 'funday'; use mon, tue"),
        ("funday", "unknown day 'funday'"),
        ([], "name at least one day"),
        ("", "unknown day ''"),
        ([7], "unknown day 7"),
        ([True], "unknown day True"),
        (5, "expected a list of days"),
    ],
)
def test_bad_days_say_what_is_accepted(days, fragment):
    with pytest.raises(ValidationError) as info:
        window(days)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("08:00", time(8, 0)),
        ("8:00", time(8, 0)),
        ("18:30", time(18, 30)),
        (" 9:05 ", time(9, 5)),
        ("07:15:30", time(7, 15, 30)),
        (time(6, 45), time(6, 45)),
    ],
)
def test_times_are_read_with_or_without_a_leading_zero(text, expected):
    assert window(start=text, end="23:00").start == expected


def test_unquoted_yaml_times_read_as_base_60_numbers_still_work():
    data = yaml.safe_load("days: [Mon, tue, WEDNESDAY]\nstart: 8:00\nend: 18:30\n")
    assert data["start"] == 480  # what YAML 1.1 makes of an unquoted 8:00
    parsed = SendWindow.model_validate(data)
    assert (parsed.days, parsed.start, parsed.end) == ((0, 1, 2), time(8, 0), time(18, 30))
    assert SendWindow.model_validate(yaml.safe_load("end: 24:00")).ends_at_midnight


def test_end_of_day_is_written_24_00_and_kept_as_midnight():
    late = window(end="24:00")
    assert late.end == time(0) and late.ends_at_midnight
    assert late.model_dump()["end"] == "24:00"
    assert window(end="00:00") == late


@pytest.mark.parametrize(
    ("start", "end", "fragment"),
    [
        ("18:00", "08:00", "start (18:00) must be before its end (08:00)"),
        ("09:00", "09:00", "start (09:00) must be before its end (09:00)"),
        ("24:00", "24:00", "'24:00' can only be the end of a send window"),
        ("25:00", "26:00", "'25:00' is not a time of day"),
        ("08:60", "18:00", "'08:60' is not a time of day"),
        ("8am", "18:00", "expected a time of day such as '08:00'"),
        (8, "18:00", "got 8"),
        (28800, "18:00", "got 28800"),
        (True, "18:00", "got True"),
    ],
)
def test_bad_times_are_refused_with_a_clear_message(start, end, fragment):
    with pytest.raises(ValidationError) as info:
        window(start=start, end=end)
    assert fragment in str(info.value)


@pytest.mark.parametrize("text", ["anytime", "AnyTime", " any time "])
def test_anytime_is_every_day_all_day(text):
    assert SendWindow.model_validate(text) == ANYTIME == SendWindow.anytime()
    assert ANYTIME.days == (0, 1, 2, 3, 4, 5, 6)
    assert (ANYTIME.start, ANYTIME.end) == (time(0), time(0))


def test_other_strings_are_not_windows():
    with pytest.raises(ValidationError, match="'anytime' or a mapping with days, start and end"):
        SendWindow.model_validate("office hours")


def test_defaults_are_weekdays_eight_to_six_and_unknown_keys_are_refused():
    assert (WEEKDAYS.days, WEEKDAYS.start, WEEKDAYS.end) == ((0, 1, 2, 3, 4), time(8), time(18))
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SendWindow.model_validate({"days": "weekdays", "timezone": "Europe/Berlin"})
    with pytest.raises(ValidationError):
        WEEKDAYS.start = time(9)  # type: ignore[misc]


def test_a_window_survives_a_round_trip_through_json():
    original = window(["sat", "mon"], "07:30:15", "24:00")
    dumped = original.model_dump(mode="json")
    assert dumped == {"days": [0, 5], "start": "07:30:15", "end": "24:00"}
    assert SendWindow.model_validate(dumped) == original
    assert SendWindow.model_validate_json(original.model_dump_json()) == original


@pytest.mark.parametrize(
    ("win", "text"),
    [
        (SendWindow(), "Mon–Fri 08:00–18:00"),
        (None, "any time"),
        (ANYTIME, "any time"),
        (window("weekends", "10:00", "16:00"), "Sat, Sun 10:00–16:00"),
        (window(["mon", "wed", "fri"]), "Mon, Wed, Fri 08:00–18:00"),
        (window("fri-mon", end="24:00"), "Fri–Mon 08:00–24:00"),
        (window(EVERY_DAY, "09:00", "17:00"), "every day 09:00–17:00"),
        (window(["mon", "tue", "wed", "sat"]), "Mon–Wed, Sat 08:00–18:00"),
    ],
)
def test_describe_reads_like_a_marketer_wrote_it(win, text):
    assert describe(win) == text


def test_frequency_cap_reads_durations_and_scales_them_with_the_time_scale():
    assert TWO_A_WEEK.per == timedelta(days=7)
    scaled = FrequencyCap.model_validate(
        {"max_emails": 2, "per": "7d"}, context={"time_scale": 3600}
    )
    assert scaled.per == timedelta(seconds=168)
    assert FrequencyCap.model_validate(scaled.model_dump()) == scaled  # not scaled again


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"max_emails": 0, "per": "7d"}, "greater than or equal to 1"),
        ({"max_emails": 2, "per": "0s"}, "'per' must be longer than zero"),
        ({"max_emails": 2, "per": "a week"}, "expected a duration such as"),
        ({"max_emails": 2}, "Field required"),
        ({"max_emails": 2, "per": "7d", "every": "1d"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_frequency_caps_are_refused(data, fragment):
    with pytest.raises(ValidationError) as info:
        FrequencyCap.model_validate(data)
    assert fragment in str(info.value)


# --- properties: exact, minimal, terminating ----------------------------------------------
#
# Everything below lives on a 15-minute grid: windows, `now`, sends, cap periods, and the zones'
# offsets and DST transitions. The answer is then on the grid too, so stepping over the grid
# from `now` is a complete brute-force search for an earlier instant.

QUARTER = timedelta(minutes=15)
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",  # +05:30
    "Asia/Kathmandu",  # +05:45
    "Australia/Lord_Howe",  # DST moves the clock by 30 minutes
]
DST_CHANGES = [  # (zone, day of a DST change there): most examples straddle one
    ("America/New_York", datetime(2026, 3, 8, tzinfo=UTC)),
    ("America/New_York", datetime(2026, 11, 1, tzinfo=UTC)),
    ("Europe/Berlin", datetime(2026, 3, 29, tzinfo=UTC)),
    ("Europe/Berlin", datetime(2026, 10, 25, tzinfo=UTC)),
    ("Australia/Lord_Howe", datetime(2026, 4, 5, tzinfo=UTC)),
    ("Australia/Lord_Howe", datetime(2026, 10, 4, tzinfo=UTC)),
]
zones_and_days = st.sampled_from(DST_CHANGES) | st.tuples(
    st.sampled_from(ZONES), st.sampled_from([day for _, day in DST_CHANGES])
)


def _clock(quarters: int) -> str:
    return f"{quarters // 4:02d}:{quarters % 4 * 15:02d}"


@st.composite
def windows(draw: st.DrawFn) -> SendWindow | None:
    if draw(st.integers(0, 4)) == 0:
        return None
    days = draw(st.sets(st.integers(0, 6), min_size=1))
    start = draw(st.integers(0, 95))
    end = draw(st.integers(start + 1, 96))
    return window(sorted(days), _clock(start), _clock(end))


@st.composite
def caps(draw: st.DrawFn) -> FrequencyCap | None:
    if draw(st.integers(0, 4)) == 0:
        return None
    per = draw(st.integers(1, 3 * 96)) * QUARTER
    return FrequencyCap(max_emails=draw(st.integers(1, 3)), per=per)


def satisfies(at: datetime, win: SendWindow | None, zone: ZoneInfo, sends, cap) -> bool:
    in_window = win is None or win.contains(at.astimezone(zone))
    in_cap = cap is None or sum(at - cap.per < s <= at for s in sends) < cap.max_emails
    return in_window and in_cap


@settings(max_examples=250, deadline=None)
@given(
    zone_and_day=zones_and_days,
    shift=st.integers(-5 * 96, 5 * 96),
    win=windows(),
    cap=caps(),
    send_shifts=st.lists(st.integers(-4 * 96, 4), max_size=5),
)
def test_the_send_time_is_the_earliest_instant_that_satisfies_window_and_cap(
    zone_and_day, shift, win, cap, send_shifts
):
    zone_name, base = zone_and_day
    zone = ZoneInfo(zone_name)
    # Arithmetic in UTC: adding to an aware datetime in a zone moves its wall clock instead.
    now_utc = base + shift * QUARTER
    now = now_utc.astimezone(zone)  # any aware zone is accepted
    sends = [(now_utc + k * QUARTER).astimezone(zone) for k in send_shifts]

    decision = next_send_time(now, win, zone, sends, cap)

    at = decision.at
    assert at.tzinfo is UTC and at >= now
    assert (at - base) % QUARTER == timedelta(0)
    assert satisfies(at, win, zone, sends, cap)
    earlier = now_utc
    while earlier < at:
        assert not satisfies(earlier, win, zone, sends, cap), f"{earlier} was possible"
        earlier += QUARTER
    assert (decision.reasons == ()) == (at == now_utc)
    assert next_send_time(at, win, zone, sends, cap) == SendDecision(at, ())
