"""Routing depth, without a database: reps who are away or at their cap of open leads are
skipped, round robin keeps its order, and when the whole pool is unavailable the manager, then
the fallback owner, takes the lead. Also the YAML syntax (``max_open_leads``, ``away``).

Fixture rules (tests/fixtures/rules/routing.yaml): LATAM -> [ines, gus], ines away
2026-12-21..2027-01-03, gus capped at 2 open leads, both managed by nate; fallback maria.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.contrib.pydantic import pydantic_data_converter

from nurture.config.config_loader import DEFAULT_CONFIG_DIR, ConfigError, load_rules
from nurture.contract.messages import AssignRequest
from nurture.domain.routing import RepLimits, choose_available, pick_rep, rep_limits, route
from nurture.domain.rules import AwayPeriod, Rep
from tests.test_cadence_rules import ROUTING, lead

TODAY = date(2026, 12, 24)
XMAS = AwayPeriod(from_=date(2026, 12, 21), until=date(2027, 1, 3))
POOL = ["alice", "bob", "chen"]


def limits(**reps: Mapping[str, object]) -> list[RepLimits]:
    return [RepLimits.model_validate({"id": rep, **fields}) for rep, fields in reps.items()]


def choose(
    candidates: list[str],
    turn: int,
    reps: list[RepLimits],
    open_counts: dict[str, int] | None = None,
    strategy: str = "round_robin",
    fallback_owner: str | None = "maria",
    today: date = TODAY,
) -> tuple[str | None, list[str]]:
    return choose_available(
        candidates, turn, strategy, reps, open_counts or {}, today, fallback_owner
    )


# --- skipping -----------------------------------------------------------------------------


def test_a_rep_who_is_away_today_is_skipped_for_the_next_in_the_pool():
    rep, reasons = choose(POOL, 0, limits(alice={"away": [XMAS]}))
    assert rep == "bob"
    assert reasons == ["alice is away (2026-12-21..2027-01-03)"]


@pytest.mark.parametrize(
    ("today", "away"),
    [
        (date(2026, 12, 20), False),
        (date(2026, 12, 21), True),  # the first day counts
        (date(2027, 1, 3), True),  # and so does the last
        (date(2027, 1, 4), False),  # back the day after
    ],
)
def test_away_periods_include_both_their_days(today, away):
    rep, _ = choose(POOL, 0, limits(alice={"away": [XMAS]}), today=today)
    assert rep == ("bob" if away else "alice")


def test_any_of_several_away_periods_counts():
    periods = [XMAS, AwayPeriod(from_=date(2027, 7, 1), until=date(2027, 7, 14))]
    assert choose(POOL, 0, limits(alice={"away": periods}), today=date(2027, 7, 14))[0] == "bob"
    assert choose(POOL, 0, limits(alice={"away": periods}), today=date(2027, 7, 15))[0] == "alice"


def test_a_rep_at_their_cap_is_skipped_and_below_it_is_not():
    capped = limits(alice={"max_open_leads": 2})
    rep, reasons = choose(POOL, 0, capped, {"alice": 2})
    assert rep == "bob"
    assert reasons == ["alice is at capacity (2/2 open leads)"]
    assert choose(POOL, 0, capped, {"alice": 3})[0] == "bob"  # over it (the cap was lowered)
    assert choose(POOL, 0, capped, {"alice": 1}) == ("alice", [])
    assert choose(POOL, 0, capped) == ("alice", [])  # no open leads at all


def test_a_cap_of_zero_keeps_a_rep_out_of_the_rotation():
    assert {choose(POOL, t, limits(bob={"max_open_leads": 0}))[0] for t in range(6)} == {
        "alice",
        "chen",
    }


def test_reps_without_limits_are_always_available():
    assert choose(POOL, 1, limits(alice={"away": [XMAS]}), {"bob": 99}) == ("bob", [])


# --- round robin order ----------------------------------------------------------------------


def test_without_limits_the_choice_is_exactly_the_old_round_robin():
    for strategy in ("round_robin", "first"):
        for turn in range(7):
            assert choose(POOL, turn, [], strategy=strategy) == (
                pick_rep(POOL, strategy, turn),
                [],
            )


def test_skipping_walks_forward_from_the_turn_so_each_turn_gives_one_lead():
    away = limits(bob={"away": [XMAS]})
    # turn 1 was bob's: it goes to the next rep after him; no turn is taken twice or lost
    assert [choose(POOL, t, away)[0] for t in range(6)] == [
        "alice",
        "chen",
        "chen",
        "alice",
        "chen",
        "chen",
    ]


def test_skipping_wraps_around_the_end_of_the_pool():
    assert choose(POOL, 2, limits(chen={"away": [XMAS]}))[0] == "alice"


def test_strategy_first_takes_the_first_available_rep_listed():
    reps = limits(alice={"away": [XMAS]}, bob={"max_open_leads": 1})
    for turn in range(4):
        assert choose(POOL, turn, reps, {"bob": 1}, strategy="first")[0] == "chen"


# --- nobody available: manager, then fallback owner ---------------------------------------


def test_when_the_whole_pool_is_unavailable_the_first_reps_manager_takes_the_lead():
    reps = limits(
        alice={"away": [XMAS], "manager": "maria"},
        bob={"max_open_leads": 1, "manager": "maria"},
        maria={"max_open_leads": 10},
    )
    rep, reasons = choose(["alice", "bob"], 1, reps, {"bob": 1, "maria": 3}, fallback_owner="hana")
    assert rep == "maria"
    assert reasons == [
        "bob is at capacity (1/1 open leads)",
        "alice is away (2026-12-21..2027-01-03)",
        "every candidate is unavailable: maria (alice's manager)",
    ]


def test_an_unavailable_manager_passes_the_lead_to_the_fallback_owner():
    reps = limits(alice={"away": [XMAS], "manager": "nate"}, nate={"away": [XMAS]})
    rep, reasons = choose(["alice"], 0, reps, fallback_owner="maria")
    assert rep == "maria"
    assert reasons == [
        "alice is away (2026-12-21..2027-01-03)",
        "nate is away (2026-12-21..2027-01-03) (alice's manager)",
        "every candidate is unavailable: maria, the fallback owner",
    ]


def test_the_fallback_owner_takes_the_lead_even_when_away_or_full():
    reps = limits(
        alice={"away": [XMAS]}, maria={"max_open_leads": 1, "away": [XMAS]}
    )  # alice has no manager: straight to the fallback owner
    rep, reasons = choose(["alice"], 0, reps, {"maria": 5}, fallback_owner="maria")
    assert rep == "maria"
    assert reasons[-1] == (
        "every candidate is unavailable: maria, the fallback owner, "
        "although maria is away (2026-12-21..2027-01-03)"
    )


def test_a_manager_who_is_in_the_pool_was_already_skipped():
    reps = limits(
        alice={"away": [XMAS], "manager": "bob"}, bob={"max_open_leads": 0, "manager": "hana"}
    )
    rep, reasons = choose(["alice", "bob"], 0, reps)
    assert rep == "maria"
    assert len(reasons) == 3 and reasons[-1].startswith("every candidate is unavailable: maria")


def test_without_a_fallback_owner_the_turns_rep_keeps_the_lead_rather_than_nobody():
    everyone_away = limits(**{r: {"away": [XMAS]} for r in POOL})
    rep, reasons = choose(POOL, 1, everyone_away, fallback_owner=None)
    assert rep == "bob"
    assert reasons[-1] == (
        "every candidate is unavailable: bob, whose turn it was (no fallback owner), "
        "although bob is away (2026-12-21..2027-01-03)"
    )


def test_choosing_from_no_candidates_is_an_error():
    with pytest.raises(ValueError, match="no candidate"):
        choose([], 0, limits(alice={}))


# --- from the rules to the request -------------------------------------------------------------


def test_rep_limits_carry_the_candidates_their_managers_and_the_fallback_owner():
    decision = route(lead(region="LATAM"), ROUTING)
    assert (decision.rule, decision.pool) == ("latam", ["ines", "gus"])
    reps = rep_limits(ROUTING, decision.pool)
    assert [r.id for r in reps] == ["ines", "nate", "gus", "maria"]
    by_id = {r.id: r for r in reps}
    assert by_id["ines"].away == [XMAS] and by_id["ines"].manager == "nate"
    assert by_id["gus"].max_open_leads == 2 and by_id["gus"].away == []
    assert by_id["maria"].max_open_leads is None
    assert [r.id for r in rep_limits(ROUTING, ["zoe", "alice"])] == ["alice", "maria"]


def test_the_fixture_pool_on_new_years_eve_goes_to_gus_then_to_the_manager_when_he_is_full():
    reps = rep_limits(ROUTING, ["ines", "gus"])
    eve = date(2026, 12, 31)
    assert choose(["ines", "gus"], 0, reps, {"gus": 1}, today=eve)[0] == "gus"
    assert choose(["ines", "gus"], 0, reps, {"gus": 2}, today=eve)[0] == "nate"
    assert choose(["ines", "gus"], 0, reps, {"gus": 2}, today=date(2027, 1, 4)) == ("ines", [])


def test_an_assign_request_round_trips_and_an_old_one_means_no_limits():
    request = AssignRequest(
        key="assign:l1:h1",
        lead_id="l1",
        pool="latam",
        candidates=["ines", "gus"],
        strategy="round_robin",
        reps=rep_limits(ROUTING, ["ines", "gus"]),
        fallback_owner=ROUTING.fallback_owner,
    )
    converter = pydantic_data_converter.payload_converter
    payloads = converter.to_payloads([request])
    assert b'"from":"2026-12-21"' in payloads[0].data
    assert converter.from_payloads(payloads, [AssignRequest]) == [request]
    old = AssignRequest.model_validate_json(
        '{"key": "k", "lead_id": "l", "pool": "emea", "candidates": ["alice"], '
        '"strategy": "round_robin"}'
    )
    assert (old.reps, old.fallback_owner) == ([], None)


# --- the YAML ---------------------------------------------------------------------------------


def test_away_periods_are_written_with_from_and_until():
    rep = Rep.model_validate(
        {
            "id": "bob",
            "name": "Bob",
            "email": "bob@x.example",
            "max_open_leads": 25,
            "away": [{"from": date(2026, 12, 21), "until": "2027-01-03"}],
        }
    )
    assert rep.away == [XMAS] and rep.max_open_leads == 25
    assert rep.away_on(date(2027, 1, 1)) == XMAS and rep.away_on(date(2027, 1, 4)) is None


def copy_of(directory: Path, tmp_path: Path) -> Path:
    config = tmp_path / "config"
    shutil.copytree(directory, config)
    return config


def problems_after(config: Path, old: str, new: str) -> list[str]:
    path = config / "routing.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1
    path.write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_rules(config)
    return [re.sub(rf"^{re.escape(str(path))}(:\d+)?: ", "", p) for p in info.value.problems]


FIXTURE_RULES = Path(__file__).parent / "fixtures" / "rules"


def test_an_away_period_that_ends_before_it_starts_is_refused(tmp_path):
    config = copy_of(FIXTURE_RULES, tmp_path)
    problems = problems_after(config, "until: 2027-01-03", "until: 2026-12-01")
    assert problems == [
        'rep "ines": away period ends before it starts (from 2026-12-21 until 2026-12-01)'
    ]


def test_an_away_period_needs_both_days_and_real_dates(tmp_path):
    config = copy_of(FIXTURE_RULES, tmp_path)
    problems = problems_after(
        config, "{from: 2026-12-21, until: 2027-01-03}", "{from: 2026-12-21, to: '2027-13-03'}"
    )
    assert 'rep "ines", away period 1: until: required key is missing' in problems
    assert 'rep "ines", away period 1: to: unknown key (check the spelling)' in problems
    config = copy_of(FIXTURE_RULES, tmp_path / "again")
    problems = problems_after(config, "until: 2027-01-03", "until: '2027-13-03'")
    assert len(problems) == 1 and problems[0].startswith(
        'rep "ines", away period 1: until: Input should be'
    )
    assert "'2027-13-03'" in problems[0]


def test_an_unquoted_impossible_date_is_a_config_problem(tmp_path):
    config = copy_of(FIXTURE_RULES, tmp_path)
    problems = problems_after(config, "until: 2027-01-03", "until: 2027-02-30")
    assert len(problems) == 1 and problems[0].startswith("not valid YAML")
    assert "day is out of range for month" in problems[0]


def test_a_negative_cap_is_refused(tmp_path):
    config = copy_of(FIXTURE_RULES, tmp_path)
    problems = problems_after(config, "max_open_leads: 2", "max_open_leads: -1")
    assert problems == [
        'rep "gus": max_open_leads: Input should be greater than or equal to 0, got -1'
    ]


def test_the_example_in_the_shipped_routing_yaml_works_once_uncommented(tmp_path):
    config = copy_of(DEFAULT_CONFIG_DIR, tmp_path)
    path = config / "routing.yaml"
    text = path.read_text(encoding="utf-8")
    example = (
        "    # max_open_leads: 25\n    # away:\n    #   - {from: 2026-12-21, until: 2027-01-03}\n"
    )
    assert example in text
    path.write_text(text.replace(example, example.replace("# ", "")), encoding="utf-8")
    bob = load_rules(config).routing.rep("bob")
    assert bob is not None and bob.max_open_leads == 25 and bob.away == [XMAS]


def test_a_rep_without_availability_settings_has_no_cap_and_is_never_away():
    alice = ROUTING.rep("alice")
    assert alice is not None and alice.max_open_leads is None and alice.away == []
    with pytest.raises(ValidationError):
        AwayPeriod.model_validate({"from": "2026-12-21"})
