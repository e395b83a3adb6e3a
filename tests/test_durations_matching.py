"""Config durations ("4h", "1h30m"…) and field conditions (segments, fit and routing rules)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel, ValidationError

from nurture.domain.durations import Duration, format_duration, parse_duration
from nurture.domain.leads import LeadProfile
from nurture.domain.matching import FieldTest, condition_holds

# --- parse_duration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("10m", timedelta(minutes=10)),
        ("4h", timedelta(hours=4)),
        ("3d", timedelta(days=3)),
        ("2w", timedelta(weeks=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1m30s", timedelta(minutes=1, seconds=30)),
        ("250ms", timedelta(milliseconds=250)),
        ("1.5h", timedelta(minutes=90)),
        ("0s", timedelta(0)),
        (" 1h 30m ", timedelta(hours=1, minutes=30)),
    ],
)
def test_short_duration_strings_parse_to_the_time_a_marketer_means(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("number", "expected"),
    [(0, timedelta(0)), (90, timedelta(seconds=90)), (1.5, timedelta(seconds=1.5))],
)
def test_plain_numbers_are_seconds(number, expected):
    assert parse_duration(number) == expected


def test_a_timedelta_passes_through_unchanged():
    delta = timedelta(hours=3, seconds=7)
    assert parse_duration(delta) is delta


@pytest.mark.parametrize("bad", ["3 days", "4", "4H", "PT", "", "h", "-4h", "4h-", "1x", "soon"])
def test_unreadable_duration_strings_are_refused_with_the_expected_form(bad):
    with pytest.raises(ValueError) as info:
        parse_duration(bad)
    message = str(info.value)
    assert "'4h'" in message and "'1h30m'" in message
    assert repr(bad) in message


def test_negative_seconds_are_refused_as_negative():
    with pytest.raises(ValueError, match="negative"):
        parse_duration(-5)


@pytest.mark.parametrize("bad", [True, False, None, [], {"h": 4}])
def test_non_duration_values_are_refused(bad):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), 10**15])
def test_absurd_numbers_are_refused_with_a_value_error_not_a_crash(bad):
    # A ValueError is what pydantic (and so the config loader) turns into a readable problem;
    # any other exception escapes load_rules as a traceback.
    with pytest.raises(ValueError):
        parse_duration(bad)


class _Timed(BaseModel):
    wait: Duration


def test_iso_8601_durations_from_pydantic_serialisation_are_accepted():
    # The module promises ISO 8601 ("PT4H"), pydantic's own timedelta form, is accepted.
    assert parse_duration("PT4H") == timedelta(hours=4)
    assert _Timed.model_validate({"wait": "P1DT2H"}).wait == timedelta(days=1, hours=2)


def test_durations_survive_a_json_round_trip_unchanged():
    original = _Timed.model_validate({"wait": "1h30m"})
    dumped = original.model_dump(mode="json")
    assert dumped == {"wait": 5400.0}
    assert _Timed.model_validate_json(original.model_dump_json()) == original
    assert _Timed.model_validate(dumped).wait == timedelta(hours=1, minutes=30)


def test_time_scale_divides_string_durations_only_when_the_loader_asks():
    assert _Timed.model_validate({"wait": "4h"}).wait == timedelta(hours=4)
    scaled = _Timed.model_validate({"wait": "4h"}, context={"time_scale": 60})
    assert scaled.wait == timedelta(minutes=4)


def test_a_bad_duration_field_gives_a_validation_error_naming_the_form():
    with pytest.raises(ValidationError) as info:
        _Timed.model_validate({"wait": "3 days"})
    assert "1h30m" in str(info.value)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(days=1, hours=4), "1d4h"),
        (timedelta(weeks=2, minutes=5), "2w5m"),
        (timedelta(seconds=1.25), "1s250ms"),
    ],
)
def test_format_duration_writes_what_parse_duration_reads(delta, text):
    assert format_duration(delta) == text
    assert parse_duration(text) == delta


# --- FieldTest shorthand forms ------------------------------------------------------------


def test_a_scalar_means_equal_ignoring_case_and_spaces():
    test = FieldTest.model_validate("EMEA")
    assert test.holds("emea")
    assert test.holds(" Emea ")
    assert not test.holds("AMER")


def test_a_list_means_equal_to_any():
    test = FieldTest.model_validate(["software", "SaaS"])
    assert test.holds("saas")
    assert test.holds("Software")
    assert not test.holds("retail")


def test_in_is_spelled_in_in_yaml():
    test = FieldTest.model_validate({"in": ["0-3 months", "3-6 months"]})
    assert test.in_ == ["0-3 months", "3-6 months"]
    assert test.holds("3-6 Months")
    assert not test.holds("12+ months")


def test_a_number_scalar_matches_the_same_number():
    test = FieldTest.model_validate(500)
    assert test.holds(500)
    assert test.holds("500")
    assert not test.holds(501)


def test_a_whole_number_matches_a_float_field_holding_that_number():
    # LeadProfile.budget is a float: a lead sent with budget 50000 holds 50000.0, and
    # ``budget: 50000`` in a rule must still match it.
    lead = LeadProfile.model_validate({"lead_id": "l1", "budget": 50000})
    assert condition_holds({"budget": FieldTest.model_validate(50000)}, lead.fields())
    assert not FieldTest.model_validate({"not_in": [0]}).holds(0.0)


def test_a_boolean_scalar_matches_booleans():
    test = FieldTest.model_validate(True)
    assert test.holds(True)
    assert not test.holds(False)


def test_an_empty_mapping_is_refused():
    with pytest.raises(ValidationError, match="empty test"):
        FieldTest.model_validate({})


def test_an_unknown_test_key_is_refused():
    with pytest.raises(ValidationError):
        FieldTest.model_validate({"contain": "vp"})


# --- FieldTest operators ------------------------------------------------------------------


def test_contains_is_a_case_insensitive_substring_of_any():
    test = FieldTest.model_validate({"contains": ["vp", "director"]})
    assert test.holds("VP Engineering")
    assert test.holds("Sales Director")
    assert not test.holds("Engineer")


def test_contains_accepts_a_single_string():
    test = FieldTest.model_validate({"contains": "Student"})
    assert test.contains == ["Student"]
    assert test.holds("PhD student")


def test_min_and_max_are_inclusive_bounds():
    test = FieldTest.model_validate({"min": 200, "max": 999})
    assert test.holds(200)
    assert test.holds(999)
    assert test.holds("500")
    assert test.holds("1,000") is False
    assert not test.holds(199)
    assert not test.holds(1000)


def test_min_reads_numbers_written_with_thousands_separators():
    assert FieldTest.model_validate({"min": 1000}).holds("12,500")


def test_min_is_false_for_values_that_are_not_numbers():
    test = FieldTest.model_validate({"min": 0})
    assert not test.holds("lots")
    assert not test.holds(True)


def test_domain_in_matches_the_email_domain_and_its_subdomains():
    test = FieldTest.model_validate({"domain_in": ["competitor.example"]})
    assert test.holds("spy@competitor.example")
    assert test.holds("Spy@Mail.Competitor.Example")
    assert not test.holds("fan@notcompetitor.example")
    assert not test.holds("fan@competitor.example.org")


def test_domain_in_accepts_a_single_string():
    assert FieldTest.model_validate({"domain_in": "gmail.com"}).holds("a@gmail.com")


def test_not_in_excludes_listed_values_ignoring_case():
    test = FieldTest.model_validate({"not_in": ["Retail", "education"]})
    assert test.holds("software")
    assert not test.holds("retail")
    assert not test.holds("EDUCATION")


def test_exists_true_needs_a_value_and_exists_false_needs_none():
    present = FieldTest.model_validate({"exists": True})
    absent = FieldTest.model_validate({"exists": False})
    for value in ("x", 0, False):
        assert present.holds(value)
        assert not absent.holds(value)
    for missing in (None, ""):
        assert not present.holds(missing)
        assert absent.holds(missing)


def test_tests_combine_with_and():
    test = FieldTest.model_validate({"contains": "manager", "not_in": ["office manager"]})
    assert test.holds("Engineering Manager")
    assert not test.holds("Office Manager")
    assert not test.holds("Engineer")


@pytest.mark.parametrize(
    "spec",
    [
        "EMEA",
        ["a", "b"],
        {"contains": "x"},
        {"min": 1},
        {"max": 1},
        {"domain_in": "x.com"},
        {"not_in": ["x"]},
        {"exists": True},
    ],
)
def test_a_missing_value_fails_every_test_except_exists_false(spec):
    test = FieldTest.model_validate(spec)
    assert not test.holds(None)
    assert not test.holds("")


def test_exists_false_combined_with_another_test_fails_on_a_missing_value():
    assert not FieldTest.model_validate({"exists": False, "contains": "x"}).holds(None)


# --- conditions ---------------------------------------------------------------------------


def _condition(spec: dict) -> dict[str, FieldTest]:
    return {name: FieldTest.model_validate(value) for name, value in spec.items()}


def test_a_condition_needs_every_field_test_to_hold():
    condition = _condition({"region": "EMEA", "company_size": {"min": 500}})
    assert condition_holds(condition, {"region": "emea", "company_size": 800})
    assert not condition_holds(condition, {"region": "emea", "company_size": 20})
    assert not condition_holds(condition, {"region": "AMER", "company_size": 800})


def test_a_condition_on_a_field_the_lead_lacks_does_not_hold():
    assert not condition_holds(_condition({"industry": "software"}), {"region": "EMEA"})


def test_the_empty_condition_matches_every_lead():
    assert condition_holds({}, {})
    assert condition_holds({}, {"region": None})


def test_custom_fields_are_matched_by_their_dotted_name():
    condition = _condition({"custom.plan": ["pro", "team"]})
    assert condition_holds(condition, {"custom.plan": "Pro"})
    assert not condition_holds(condition, {"custom.plan": "free"})
