"""Cadence selection and stepping, lead routing, SLA escalation and rep-action rules, against
the compact fixture rules (tests/fixtures/rules/cadences.yaml and routing.yaml).

Cadences: ``enterprise`` (company_size >= 500, 12 weekly steps s01..s12, one cycle),
``general`` (catch-all: hello after 1h, follow-up after 3d; 2 cycles, 2w between) and
``recycle``. Routing: healthcare/pharma -> [dana] (first), EMEA -> [alice, bob],
AMER -> [chen, dana], fallback maria; managers alice/bob -> maria, chen/dana -> nate,
maria/nate -> hana; hana has none; second escalation hana; contact SLA 4h.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import get_args

import pytest

from nurture.config.config_loader import load_rules
from nurture.domain.cadence import (
    CadenceProgress,
    advance,
    current_step,
    enrol,
    select_cadence,
    total_touches,
    touch_key,
)
from nurture.domain.leads import LeadProfile
from nurture.domain.routing import RouteDecision, candidates_after_miss, pick_rep, route
from nurture.domain.rules import Cadence, CadenceBook, RoutingRules
from nurture.domain.sla import escalation_recipients, sla_due_at
from nurture.domain.stages import STAGES, RepAction, rep_action_error

RULES = load_rules(Path(__file__).parent / "fixtures" / "rules")
BOOK: CadenceBook = RULES.cadences
ROUTING: RoutingRules = RULES.routing
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def lead(**fields: object) -> LeadProfile:
    return LeadProfile.model_validate({"lead_id": "lead-1", **fields})


def cadence(cadence_id: str) -> Cadence:
    found = BOOK.get(cadence_id)
    assert found is not None
    return found


def walk(c: Cadence, start: datetime = T0, enrolment: int = 1) -> list[CadenceProgress]:
    """Every position a lead passes through, sending each touch the moment it is due."""
    progress = enrol(c, enrolment, start)
    seen = [progress]
    for _ in range(200):
        if progress.parked:
            return seen
        assert progress.due_at is not None
        progress = advance(progress, c, progress.due_at)
        seen.append(progress)
    raise AssertionError("cadence never parked")


def _step(step_text: str, **extra: object) -> dict:
    return {"name": step_text, "delay": "1d", "template": "t/touch.html", "subject": "Hi", **extra}


def book(*cadences: dict) -> CadenceBook:
    return CadenceBook.model_validate(
        {"sender": {"email": "m@test.example"}, "cadences": list(cadences)}
    )


# --- select_cadence -----------------------------------------------------------------------


def test_a_big_company_gets_the_enterprise_cadence():
    assert select_cadence(lead(company_size=800), BOOK).id == "enterprise"
    assert select_cadence(lead(company_size=500), BOOK).id == "enterprise"


@pytest.mark.parametrize("size", [None, 0, 499])
def test_everyone_else_gets_the_catch_all(size):
    assert select_cadence(lead(company_size=size), BOOK).id == "general"


def test_the_first_matching_segment_wins():
    two = book(
        {"id": "emea", "name": "EMEA", "segment": {"region": "EMEA"}, "steps": [_step("a")]},
        {
            "id": "big",
            "name": "Big",
            "segment": {"company_size": {"min": 500}},
            "steps": [_step("a")],
        },
        {"id": "rest", "name": "Rest", "steps": [_step("a")]},
        {"id": "back", "name": "Back", "recycle": True, "steps": [_step("a")]},
    )
    assert select_cadence(lead(region="EMEA", company_size=900), two).id == "emea"
    assert select_cadence(lead(region="AMER", company_size=900), two).id == "big"
    assert select_cadence(lead(region="AMER", company_size=9), two).id == "rest"


def test_new_leads_never_get_the_recycle_cadence_even_when_it_comes_first():
    recycle_first = book(
        {"id": "back", "name": "Back", "recycle": True, "steps": [_step("a")]},
        {"id": "rest", "name": "Rest", "steps": [_step("a")]},
    )
    assert select_cadence(lead(), recycle_first).id == "rest"
    for size in (None, 10, 10_000):
        assert not select_cadence(lead(company_size=size), BOOK).recycle


def test_the_book_knows_its_recycle_cadence():
    assert BOOK.recycle_cadence.id == "recycle"
    assert BOOK.get("nope") is None


# --- enrol / advance ----------------------------------------------------------------------


def test_enrolment_schedules_the_first_step_after_its_delay():
    progress = enrol(cadence("general"), 1, T0)
    assert (progress.cadence_id, progress.enrolment, progress.cycle, progress.step_index) == (
        "general",
        1,
        1,
        0,
    )
    assert progress.due_at == T0 + timedelta(hours=1)
    assert current_step(progress, cadence("general")).name == "hello"


def test_a_zero_delay_first_step_is_due_at_once():
    assert enrol(cadence("enterprise"), 1, T0).due_at == T0


def test_the_enterprise_cadence_sends_twelve_weekly_touches_then_parks():
    c = cadence("enterprise")
    positions = walk(c)
    sent = [p for p in positions if not p.parked]
    assert [current_step(p, c).name for p in sent] == [f"s{i:02d}" for i in range(1, 13)]
    assert [p.due_at for p in sent] == [T0 + timedelta(weeks=i) for i in range(12)]
    assert positions[-1].parked and positions[-1].due_at is None
    assert current_step(positions[-1], c) is None
    assert total_touches(c) == 12


def test_a_repeating_cadence_runs_every_cycle_with_the_pause_between_then_parks():
    c = cadence("general")
    positions = walk(c)
    sent = [p for p in positions if not p.parked]
    assert [(p.cycle, current_step(p, c).name) for p in sent] == [
        (1, "hello"),
        (1, "follow-up"),
        (2, "hello"),
        (2, "follow-up"),
    ]
    hello1 = T0 + timedelta(hours=1)
    follow1 = hello1 + timedelta(days=3)
    hello2 = follow1 + timedelta(weeks=2) + timedelta(hours=1)
    follow2 = hello2 + timedelta(days=3)
    assert [p.due_at for p in sent] == [hello1, follow1, hello2, follow2]
    assert positions[-1].parked
    assert len(sent) == total_touches(c) == 4


def test_delays_count_from_when_the_previous_touch_went_out():
    c = cadence("general")
    progress = enrol(c, 1, T0)
    late = T0 + timedelta(days=2)  # the first touch went out late
    assert advance(progress, c, late).due_at == late + timedelta(days=3)


def test_advancing_a_parked_lead_keeps_it_parked():
    c = cadence("recycle")
    parked = walk(c)[-1]
    assert advance(parked, c, T0 + timedelta(days=90)).parked


# --- touch keys ---------------------------------------------------------------------------


def _keys(c: Cadence, enrolment: int, lead_id: str = "lead-1") -> list[str]:
    return [
        touch_key(lead_id, p, step)
        for p in walk(c, enrolment=enrolment)
        if not p.parked and (step := current_step(p, c)) is not None
    ]


def test_every_touch_of_a_cadence_has_its_own_key():
    for c in BOOK.cadences:
        keys = _keys(c, 1)
        assert len(keys) == len(set(keys)) == total_touches(c)


def test_the_same_step_in_another_cycle_has_another_key():
    c = cadence("general")
    keys = _keys(c, 1)
    assert keys[0] != keys[2]  # hello, cycle 1 vs cycle 2
    assert "c1" in keys[0] and "c2" in keys[2]


def test_a_second_enrolment_never_reuses_a_touch_key():
    c = cadence("recycle")
    assert not set(_keys(c, 2)) & set(_keys(c, 3))


def test_touch_keys_differ_per_lead_and_are_stable():
    c = cadence("general")
    assert _keys(c, 1) == _keys(c, 1)
    assert not set(_keys(c, 1, "lead-1")) & set(_keys(c, 1, "lead-2"))
    progress = CadenceProgress(cadence_id="general", enrolment=4, cycle=2, step_index=1)
    assert touch_key("lead-9", progress, c.steps[1]) == "touch:lead-9:general:e4:c2:follow-up"


def test_the_same_step_name_in_two_cadences_has_two_keys():
    a = CadenceProgress(cadence_id="enterprise", enrolment=1)
    b = CadenceProgress(cadence_id="general", enrolment=1)
    step = cadence("general").steps[0]
    assert touch_key("lead-1", a, step) != touch_key("lead-1", b, step)


# --- routing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "rule", "pool", "strategy"),
    [
        ({"industry": "Pharma", "region": "EMEA"}, "healthcare", ["dana"], "first"),
        ({"industry": "healthcare"}, "healthcare", ["dana"], "first"),
        ({"region": "EMEA"}, "emea", ["alice", "bob"], "round_robin"),
        ({"region": "emea", "industry": "software"}, "emea", ["alice", "bob"], "round_robin"),
        ({"region": "AMER"}, "amer", ["chen", "dana"], "round_robin"),
        ({"region": "APAC"}, "fallback", ["maria"], "first"),
        ({}, "fallback", ["maria"], "first"),
    ],
)
def test_leads_are_routed_by_specialism_then_territory_then_fallback(fields, rule, pool, strategy):
    decision = route(lead(**fields), ROUTING)
    assert (decision.rule, decision.pool, decision.strategy) == (rule, pool, strategy)


def test_round_robin_takes_turns_and_wraps_around():
    pool = ["alice", "bob", "chen"]
    assert [pick_rep(pool, "round_robin", t) for t in range(7)] == [
        "alice",
        "bob",
        "chen",
        "alice",
        "bob",
        "chen",
        "alice",
    ]


def test_strategy_first_always_picks_the_first_rep():
    assert {pick_rep(["dana", "chen"], "first", t) for t in range(5)} == {"dana"}


def test_picking_from_no_reps_is_an_error():
    with pytest.raises(ValueError, match="no candidate"):
        pick_rep([], "round_robin", 0)


def test_after_a_miss_the_rep_who_missed_is_dropped_from_the_pool():
    decision = route(lead(region="EMEA"), ROUTING)
    assert candidates_after_miss(decision, ["alice"], ROUTING) == ["bob"]
    assert candidates_after_miss(decision, [], ROUTING) == ["alice", "bob"]


def test_when_the_whole_pool_missed_the_fallback_owner_takes_over():
    decision = route(lead(region="EMEA"), ROUTING)
    assert candidates_after_miss(decision, ["alice", "bob"], ROUTING) == ["maria"]


def test_when_everyone_including_the_fallback_missed_there_is_nobody_left():
    decision = route(lead(region="EMEA"), ROUTING)
    assert candidates_after_miss(decision, ["alice", "bob", "maria"], ROUTING) == []
    fallback = RouteDecision(rule="fallback", pool=["maria"], strategy="first")
    assert candidates_after_miss(fallback, ["maria"], ROUTING) == []


# --- SLA ----------------------------------------------------------------------------------


def test_the_contact_sla_is_due_four_hours_after_assignment():
    assert sla_due_at(T0, ROUTING) == T0 + timedelta(hours=4)


def test_a_first_miss_alerts_the_reps_manager():
    assert escalation_recipients("alice", 1, ROUTING) == ["maria"]
    assert escalation_recipients("chen", 1, ROUTING) == ["nate"]


@pytest.mark.parametrize("miss", [2, 3, 7])
def test_a_second_miss_also_alerts_the_second_escalation(miss):
    assert escalation_recipients("alice", miss, ROUTING) == ["maria", "hana"]


def test_a_manager_who_is_also_the_second_escalation_is_alerted_once():
    assert escalation_recipients("maria", 2, ROUTING) == ["hana"]


def test_a_rep_without_a_manager_escalates_to_the_fallback_owner():
    assert escalation_recipients("hana", 1, ROUTING) == ["maria"]
    assert escalation_recipients("nobody-we-know", 1, ROUTING) == ["maria"]


# --- rep actions by stage -----------------------------------------------------------------

ACTIONS: tuple[RepAction, ...] = get_args(RepAction)
ALLOWED = {
    "accept": {"assigned", "working"},
    "contact": {"assigned", "working"},
    "reject": {"assigned", "working"},
    "outcome": {"working"},
}
EVERY_COMBINATION = list(itertools.product(ACTIONS, STAGES))


def test_the_table_covers_every_action():
    assert set(ACTIONS) == set(ALLOWED)


@pytest.mark.parametrize(("action", "stage"), EVERY_COMBINATION)
def test_the_owner_may_act_only_in_the_stages_that_allow_it(action, stage):
    error = rep_action_error(action, stage, owner="alice", rep="alice", known_rep=True)
    if stage in ALLOWED[action]:
        assert error is None
    else:
        assert error is not None
        assert f"cannot {action}" in error and repr(stage) in error


@pytest.mark.parametrize(("action", "stage"), EVERY_COMBINATION)
def test_a_rep_who_does_not_own_the_lead_is_refused(action, stage):
    error = rep_action_error(action, stage, owner="alice", rep="bob", known_rep=True)
    assert error is not None
    if stage in ALLOWED[action]:
        assert "does not own" in error and "alice" in error


@pytest.mark.parametrize(("action", "stage"), EVERY_COMBINATION)
def test_an_unknown_rep_is_refused_whatever_the_stage(action, stage):
    error = rep_action_error(action, stage, owner="zed", rep="zed", known_rep=False)
    assert error is not None and "unknown rep 'zed'" in error


@pytest.mark.parametrize("action", ACTIONS)
def test_nobody_may_act_on_an_unowned_lead(action):
    error = rep_action_error(action, "working", owner=None, rep="alice", known_rep=True)
    assert error is not None and "nobody" in error


def test_an_outcome_on_an_assigned_lead_says_to_accept_it_first():
    error = rep_action_error("outcome", "assigned", owner="alice", rep="alice", known_rep=True)
    assert error is not None and "accept" in error and "first" in error


@pytest.mark.parametrize("stage", [s for s in STAGES if s != "assigned"])
def test_only_an_assigned_lead_gets_the_accept_first_hint(stage):
    error = rep_action_error("outcome", stage, owner="alice", rep="alice", known_rep=True)
    assert error is None or "first" not in error


def test_a_cadence_may_have_its_own_send_window_and_steps_are_checked_per_channel():
    book = CadenceBook.model_validate(
        {
            "sender": {"email": "m@x.example"},
            "send_window": {"days": "weekdays", "start": "09:00", "end": "17:00"},
            "cadences": [
                {
                    "id": "weekend",
                    "name": "Weekend",
                    "segment": {"industry": "retail"},
                    "send_window": {"days": "weekends", "start": "10:00", "end": "14:00"},
                    "steps": [{"name": "a", "delay": "1d", "template": "t.html", "subject": "A"}],
                },
                {
                    "id": "all",
                    "name": "All",
                    "steps": [
                        {"name": "a", "delay": "1d", "template": "t.html", "subject": "A"},
                        {"name": "ring", "delay": "1d", "channel": "call", "title": "Call"},
                    ],
                },
                {
                    "id": "recycle",
                    "name": "R",
                    "recycle": True,
                    "send_window": "anytime",
                    "steps": [{"name": "b", "delay": "1d", "template": "t.html", "subject": "B"}],
                },
            ],
        }
    )
    weekend, everyone, recycle = book.cadences
    assert book.window_for(weekend).days == (5, 6)
    assert book.window_for(everyone).start.hour == 9
    assert book.window_for(recycle).days == tuple(range(7))
    assert everyone.steps[1].due_within == timedelta(days=2)
    bad_steps = [
        (
            {"channel": "call", "template": "t.html", "subject": "x", "title": "t"},
            "'template'/'subject' are for email",
        ),
        ({"channel": "call"}, "needs a 'title'"),
        ({"template": "t.html"}, "needs subject"),
        (
            {"template": "t.html", "subject": "s", "title": "t"},
            "'title'/'instructions' are for task",
        ),
        ({"channel": "fax", "title": "t"}, "channel"),
    ]
    for fields, message in bad_steps:
        with pytest.raises(ValueError, match=message):
            Cadence.model_validate(
                {"id": "c", "name": "C", "steps": [{"name": "s", "delay": "1d", **fields}]}
            )
