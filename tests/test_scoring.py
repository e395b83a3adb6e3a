"""Lead scoring against the compact fixture rules (tests/fixtures/rules/scoring.yaml).

Behaviour points: page_view 1, return_visit 3, blog_visit 0, download 10, form_fill 20,
email_open 1, email_click 5, careers_page -10; return visit after 1d. URL rules: */blog/* ->
blog_visit, */careers* -> careers_page, */pricing* -> 7 points ("pricing page"). Fit: senior
title 15, big company (500+) 10, student -30. Decay: after 14d, 5 points every 7d, floor 0.
Sales-ready at 50. Grades A >= 25, B >= 10, C >= 0, D otherwise. requested_call qualifies.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nurture.config.config_loader import load_rules
from nurture.domain.leads import LeadEvent, LeadProfile
from nurture.domain.rules import DecayPolicy, ScoringRules
from nurture.domain.scoring import (
    ScoreCard,
    ScoreEntry,
    apply_decay,
    explain,
    fit_score,
    grade,
    is_sales_ready,
    next_decay_at,
    qualifies_instantly,
    reset_behaviour,
    score_event,
    with_fit,
)

RULES_DIR = Path(__file__).parent / "fixtures" / "rules"
RULES: ScoringRules = load_rules(RULES_DIR).scoring
DECAY: DecayPolicy = RULES.decay  # type: ignore[assignment]
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SITE = "https://www.test.example"


def event(kind: str, at: datetime | None = T0, url: str | None = None) -> LeadEvent:
    return LeadEvent(lead_id="lead-1", type=kind, at=at, url=url)


def profile(**fields: object) -> LeadProfile:
    return LeadProfile.model_validate({"lead_id": "lead-1", **fields})


def score(*events: LeadEvent, card: ScoreCard | None = None) -> tuple[ScoreCard, list[ScoreEntry]]:
    """Score events in order; return the final card and every entry produced."""
    card = card or ScoreCard()
    produced: list[ScoreEntry] = []
    for ev in events:
        card, entries = score_event(card, ev, RULES, now=ev.at or T0)
        produced += entries
    return card, produced


def active_card(points: int, at: datetime = T0) -> ScoreCard:
    """A card whose last activity is ``at`` and that holds ``points`` behaviour points."""
    card, _ = score(*[event("email_open", at) for _ in range(points)])
    assert card.behaviour_points == points
    return card


# --- behaviour points ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "points"),
    [("page_view", 1), ("download", 10), ("form_fill", 20), ("email_open", 1), ("email_click", 5)],
)
def test_each_behaviour_scores_its_configured_points(kind, points):
    card, entries = score(event(kind))
    assert card.behaviour_points == points
    assert card.total == points
    assert [(e.rule, e.points, e.event_type) for e in entries] == [(kind, points, kind)]


def test_repeated_behaviours_add_up_and_are_counted():
    card, _ = score(event("download"), event("download"), event("email_click"))
    assert card.behaviour_points == 25
    assert card.tallies["download"].points == 20
    assert card.tallies["download"].count == 2
    assert card.tallies["email_click"].count == 1


def test_a_blog_url_re_classifies_the_page_view_as_a_blog_visit():
    card, entries = score(event("page_view", url=f"{SITE}/blog/how-to"))
    assert [(e.rule, e.points, e.event_type) for e in entries] == [("blog_visit", 0, "blog_visit")]
    assert entries[0].detail == f"{SITE}/blog/how-to"
    assert card.behaviour_points == 0
    assert "page_view" not in card.tallies


def test_a_pricing_url_gives_its_own_points_instead_of_a_page_view():
    card, entries = score(event("page_view", url=f"{SITE}/pricing"))
    assert [(e.rule, e.points) for e in entries] == [("pricing page", 7)]
    assert card.behaviour_points == 7


def test_a_careers_url_takes_points_away():
    card, entries = score(event("page_view", url=f"{SITE}/careers/open-roles"))
    assert [(e.rule, e.points) for e in entries] == [("careers_page", -10)]
    assert card.behaviour_points == -10
    assert card.total == -10


def test_url_rules_ignore_case():
    _, entries = score(event("page_view", url="HTTPS://WWW.TEST.EXAMPLE/PRICING?plan=team"))
    assert [(e.rule, e.points) for e in entries] == [("pricing page", 7)]


def test_an_unmatched_url_is_a_plain_page_view():
    _, entries = score(event("page_view", url=f"{SITE}/about"))
    assert [(e.rule, e.points) for e in entries] == [("page_view", 1)]


def test_url_rules_apply_to_page_views_only():
    _, entries = score(event("download", url=f"{SITE}/pricing.pdf"))
    assert [(e.rule, e.points) for e in entries] == [("download", 10)]


def test_an_event_without_a_time_is_scored_at_now():
    card, entries = score_event(ScoreCard(), event("download", at=None), RULES, now=T0)
    assert entries[0].at == T0
    assert card.last_activity_at == T0


# --- return visits ------------------------------------------------------------------------


def _rules(entries: list[ScoreEntry]) -> list[str]:
    return [e.rule for e in entries]


def test_the_first_page_view_is_not_a_return_visit():
    _, entries = score(event("page_view"))
    assert "return_visit" not in _rules(entries)


def test_a_page_view_within_return_visit_after_is_not_a_return_visit():
    _, entries = score(event("page_view"), event("page_view", T0 + timedelta(hours=23, minutes=59)))
    assert "return_visit" not in _rules(entries)


def test_a_page_view_after_return_visit_after_earns_the_return_visit_bonus():
    card, entries = score(event("page_view"), event("page_view", T0 + timedelta(days=1)))
    assert _rules(entries) == ["page_view", "page_view", "return_visit"]
    assert card.behaviour_points == 1 + 1 + 3


def test_the_return_visit_gap_counts_from_the_latest_visit():
    # Visits every 20 hours: each is within a day of the one before, so none is a return.
    visits = [event("page_view", T0 + timedelta(hours=20 * i)) for i in range(5)]
    _, entries = score(*visits)
    assert "return_visit" not in _rules(entries)


def test_other_behaviours_are_not_visits_and_never_earn_the_return_bonus():
    _, entries = score(
        event("page_view"),
        event("email_click", T0 + timedelta(days=2)),
        event("download", T0 + timedelta(days=4)),
    )
    assert "return_visit" not in _rules(entries)


def test_a_late_email_click_does_not_reset_the_return_visit_clock():
    _, entries = score(
        event("page_view"),
        event("email_click", T0 + timedelta(hours=12)),
        event("page_view", T0 + timedelta(days=1)),
    )
    assert _rules(entries).count("return_visit") == 1


def test_a_re_classified_page_view_still_counts_as_a_return_visit():
    _, entries = score(
        event("page_view"), event("page_view", T0 + timedelta(days=2), url=f"{SITE}/pricing")
    )
    assert _rules(entries) == ["page_view", "pricing page", "return_visit"]


def test_an_out_of_order_older_visit_is_not_a_return_visit():
    _, entries = score(event("page_view", T0 + timedelta(days=5)), event("page_view", T0))
    assert "return_visit" not in _rules(entries)


# --- unknown events and instant qualification ---------------------------------------------


def test_an_unknown_event_type_scores_nothing_and_says_it_was_unscored():
    card, entries = score(event("webinar_attended"))
    assert card.behaviour_points == 0
    assert [(e.rule, e.points) for e in entries] == [("unscored webinar_attended", 0)]
    assert ("unscored webinar_attended", 0, 1) in explain(card)


def test_an_unknown_event_still_counts_as_activity():
    card, _ = score(event("webinar_attended", T0 + timedelta(days=3)))
    assert card.last_activity_at == T0 + timedelta(days=3)


def test_an_instant_qualify_event_qualifies_without_points():
    ev = event("requested_call")
    assert qualifies_instantly(ev, RULES)
    card, entries = score(ev)
    assert [(e.rule, e.points) for e in entries] == [("instant qualify", 0)]
    assert card.total == 0


@pytest.mark.parametrize("kind", ["form_fill", "download", "page_view", "webinar_attended"])
def test_ordinary_events_do_not_qualify_instantly(kind):
    assert not qualifies_instantly(event(kind), RULES)


# --- fit and grades -----------------------------------------------------------------------


def test_fit_rules_add_points_for_who_the_lead_is():
    points, matches = fit_score(profile(title="VP Engineering", company_size=800), RULES)
    assert matches == {"senior title": 15, "big company": 10}
    assert points == 25


def test_a_student_gets_negative_fit():
    points, matches = fit_score(profile(title="Graduate Student"), RULES)
    assert matches == {"student": -30}
    assert points == -30


def test_a_bare_lead_has_no_fit_points():
    assert fit_score(profile(email="x@test.example"), RULES) == (0, {})


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"title": "Chief Revenue Officer", "company_size": 5000}, "A"),
        ({"title": "Director of Ops"}, "B"),
        ({"company_size": 500}, "B"),
        ({"company_size": 499}, "C"),
        ({}, "C"),
        ({"title": "student"}, "D"),
    ],
)
def test_grade_comes_from_fit(fields, expected):
    card = with_fit(ScoreCard(), profile(**fields), RULES)
    assert grade(card, RULES) == expected


def test_grade_ignores_behaviour_points():
    card, _ = score(*[event("form_fill") for _ in range(5)])
    card = with_fit(card, profile(title="student"), RULES)
    assert card.total == 100 - 30
    assert grade(card, RULES) == "D"


def test_with_fit_replaces_fit_points_when_the_profile_changes():
    card = with_fit(ScoreCard(), profile(title="VP Sales", company_size=900), RULES)
    card = with_fit(card, profile(title="Intern", company_size=10), RULES)
    assert card.fit_points == 0
    assert card.fit_matches == {}


def test_the_total_is_fit_plus_behaviour():
    card, _ = score(event("form_fill"), event("download"))
    card = with_fit(card, profile(title="VP Sales"), RULES)
    assert (card.fit_points, card.behaviour_points, card.total) == (15, 30, 45)


def test_a_lead_is_sales_ready_at_the_threshold_and_not_below():
    card, _ = score(event("form_fill"), event("email_click", T0))
    card = with_fit(card, profile(title="VP Sales"), RULES)
    assert card.total == 40
    assert not is_sales_ready(card, RULES)
    card, _ = score(event("email_click", T0), event("email_click", T0), card=card)
    assert card.total == 50
    assert is_sales_ready(card, RULES)


# --- explain ------------------------------------------------------------------------------


def test_explain_lists_every_contributing_rule_biggest_first():
    card, _ = score(
        event("form_fill"),
        event("page_view", url=f"{SITE}/pricing"),
        event("page_view", T0 + timedelta(days=2), url=f"{SITE}/careers"),
        event("email_open"),
        event("email_open"),
        event("page_view", url=f"{SITE}/blog/x"),
        event("mystery"),
    )
    card = with_fit(card, profile(title="Director", company_size=600), RULES)
    rows = explain(card)
    assert set(rows) == {
        ("form_fill", 20, 1),
        ("fit: senior title", 15, 1),
        ("fit: big company", 10, 1),
        ("careers_page", -10, 1),
        ("pricing page", 7, 1),
        ("return_visit", 3, 1),
        ("email_open", 2, 2),
        ("blog_visit", 0, 1),
        ("unscored mystery", 0, 1),
    }
    effects = [abs(points) for _, points, _ in rows]
    assert effects == sorted(effects, reverse=True)
    assert sum(points for _, points, _ in rows) == card.total


def test_explain_shows_decay_and_resets():
    card = active_card(12)
    card, _ = apply_decay(card, DECAY, T0 + timedelta(days=15))
    card, _ = reset_behaviour(card, T0 + timedelta(days=16), "sales rejected")
    rows = {rule: (points, times) for rule, points, times in explain(card)}
    assert rows["decay"] == (-5, 1)
    assert rows["recycle reset"] == (-7, 1)
    assert rows["email_open"] == (12, 12)


# --- reset --------------------------------------------------------------------------------


def test_reset_behaviour_zeroes_behaviour_points_and_keeps_fit():
    card, _ = score(event("form_fill"), event("download"))
    card = with_fit(card, profile(title="VP Sales"), RULES)
    reset, entries = reset_behaviour(card, T0 + timedelta(days=1), "rejected by alice")
    assert reset.behaviour_points == 0
    assert reset.fit_points == 15
    assert reset.total == 15
    assert [(e.rule, e.points, e.detail) for e in entries] == [
        ("recycle reset", -30, "rejected by alice")
    ]


def test_reset_behaviour_lifts_a_negative_behaviour_score_to_zero():
    card, _ = score(event("page_view", url=f"{SITE}/careers"))
    reset, entries = reset_behaviour(card, T0, "recycled")
    assert reset.behaviour_points == 0
    assert entries[0].points == 10


def test_reset_behaviour_with_nothing_to_reset_records_nothing():
    card = ScoreCard()
    reset, entries = reset_behaviour(card, T0, "recycled")
    assert entries == []
    assert reset == card


# --- decay --------------------------------------------------------------------------------


def test_no_decay_before_inactive_after():
    card = active_card(30)
    decayed, entries = apply_decay(card, DECAY, T0 + timedelta(days=14) - timedelta(seconds=1))
    assert entries == []
    assert decayed.behaviour_points == 30


def test_no_decay_without_any_activity_or_without_a_policy():
    assert apply_decay(ScoreCard(), DECAY, T0 + timedelta(days=400)) == (ScoreCard(), [])
    card = active_card(30)
    assert apply_decay(card, None, T0 + timedelta(days=400)) == (card, [])
    assert next_decay_at(card, None) is None
    assert next_decay_at(ScoreCard(), DECAY) is None


def test_decay_takes_points_each_period_once_inactive():
    card = active_card(30)
    card, entries = apply_decay(card, DECAY, T0 + timedelta(days=14))
    assert [(e.rule, e.points, e.at) for e in entries] == [("decay", -5, T0 + timedelta(days=14))]
    assert card.behaviour_points == 25
    card, entries = apply_decay(card, DECAY, T0 + timedelta(days=20))
    assert entries == []
    card, entries = apply_decay(card, DECAY, T0 + timedelta(days=21))
    assert [e.points for e in entries] == [-5]
    assert card.behaviour_points == 20


def test_decay_catches_up_on_every_missed_period_at_once():
    card = active_card(30)
    card, entries = apply_decay(card, DECAY, T0 + timedelta(days=36))
    # ticks at 14d, 21d, 28d, 35d
    assert [(e.points, e.at) for e in entries] == [(-20, T0 + timedelta(days=35))]
    assert card.behaviour_points == 10
    assert card.last_decay_at == T0 + timedelta(days=35)


def test_decay_never_goes_below_the_floor():
    card = active_card(12)
    card, entries = apply_decay(card, DECAY, T0 + timedelta(days=100))
    assert card.behaviour_points == 0
    assert [e.points for e in entries] == [-12]
    card, entries = apply_decay(card, DECAY, T0 + timedelta(days=200))
    assert entries == []
    assert card.behaviour_points == 0


def test_decay_stops_at_a_non_zero_floor():
    policy = DecayPolicy(inactive_after="1d", every="1d", points=4, floor=10)
    card = active_card(21)
    card, _ = apply_decay(card, policy, T0 + timedelta(days=30))
    assert card.behaviour_points == 10


def test_decay_does_not_touch_a_score_already_below_the_floor():
    card, _ = score(event("page_view", url=f"{SITE}/careers"))
    decayed, entries = apply_decay(card, DECAY, T0 + timedelta(days=60))
    assert entries == []
    assert decayed.behaviour_points == -10


def test_decay_only_lowers_behaviour_points_not_fit():
    card = with_fit(active_card(10), profile(title="VP Sales", company_size=900), RULES)
    card, _ = apply_decay(card, DECAY, T0 + timedelta(days=100))
    assert card.fit_points == 25
    assert card.total == 25


def test_applying_decay_twice_at_the_same_time_takes_points_once():
    card = active_card(30)
    now = T0 + timedelta(days=22)
    once, first = apply_decay(card, DECAY, now)
    twice, second = apply_decay(once, DECAY, now)
    assert sum(e.points for e in first) == -10
    assert second == []
    assert twice.behaviour_points == once.behaviour_points == 20


def test_new_activity_restarts_the_inactivity_clock():
    card = active_card(30)
    card, _ = apply_decay(card, DECAY, T0 + timedelta(days=15))
    assert card.behaviour_points == 25
    card, _ = score(event("email_open", T0 + timedelta(days=16)), card=card)
    card, entries = apply_decay(card, DECAY, T0 + timedelta(days=29))
    assert entries == []
    assert next_decay_at(card, DECAY) == T0 + timedelta(days=30)


def test_next_decay_is_inactive_after_the_last_activity():
    assert next_decay_at(active_card(30), DECAY) == T0 + timedelta(days=14)


def test_next_decay_follows_the_last_decay_by_one_period():
    card, _ = apply_decay(active_card(30), DECAY, T0 + timedelta(days=16))
    assert next_decay_at(card, DECAY) == T0 + timedelta(days=21)


def test_no_next_decay_once_the_floor_is_reached():
    card, _ = apply_decay(active_card(5), DECAY, T0 + timedelta(days=14))
    assert card.behaviour_points == 0
    assert next_decay_at(card, DECAY) is None


def test_decay_happens_exactly_at_next_decay_at_and_not_a_moment_before():
    card = active_card(40)
    for _ in range(5):
        due = next_decay_at(card, DECAY)
        assert due is not None
        same, early = apply_decay(card, DECAY, due - timedelta(microseconds=1))
        assert early == [] and same == card
        card, entries = apply_decay(card, DECAY, due)
        assert [e.points for e in entries] == [-5]


def test_next_decay_at_matches_apply_decay_after_a_late_dated_event():
    # Decay caught up to day 28 (ticks 14d, 21d, 28d); then an event dated day 10 arrives
    # late (a back-filled import). Inactivity now counts from day 10: ticks at 24d, 31d, 38d.
    card, _ = apply_decay(active_card(40), DECAY, T0 + timedelta(days=30))
    card, _ = score(event("email_open", T0 + timedelta(days=10)), card=card)
    due = next_decay_at(card, DECAY)
    assert due is not None
    _, early = apply_decay(card, DECAY, due - timedelta(microseconds=1))
    assert early == [], f"apply_decay took points at {early[0].at}, before next_decay_at {due}"


# --- properties ---------------------------------------------------------------------------

KINDS = [*RULES.behaviours, "requested_call", "webinar_attended", "unsubscribe"]
URLS = [None, f"{SITE}/", f"{SITE}/blog/a", f"{SITE}/pricing", f"{SITE}/careers", f"{SITE}/x"]

raw_events = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.sampled_from(URLS),
        st.integers(min_value=0, max_value=90 * 24 * 60),  # minutes after T0
    ),
    max_size=30,
)


def seconds(low: int, high: int) -> st.SearchStrategy[timedelta]:
    return st.integers(min_value=low, max_value=high).map(lambda s: timedelta(seconds=s))


policies = st.builds(
    DecayPolicy,
    inactive_after=seconds(0, 30 * 86400),
    every=seconds(60, 14 * 86400),
    points=st.integers(min_value=1, max_value=40),
    floor=st.integers(min_value=-50, max_value=50),
)
profiles = st.builds(
    profile,
    title=st.sampled_from([None, "VP Sales", "student", "Engineer", "Chief Student Officer"]),
    company_size=st.one_of(st.none(), st.integers(min_value=0, max_value=5000)),
)


def _as_events(raw: list[tuple[str, str | None, int]]) -> list[LeadEvent]:
    return [event(kind, T0 + timedelta(minutes=m), url) for kind, url, m in raw]


@settings(max_examples=200, deadline=None)
@given(raw=raw_events, policy=policies, later=st.integers(min_value=0, max_value=400 * 86400))
def test_decay_never_raises_a_score(raw, policy, later):
    card, _ = score(*_as_events(raw))
    now = T0 + timedelta(seconds=later)
    decayed, entries = apply_decay(card, policy, now)
    assert decayed.total <= card.total
    assert decayed.behaviour_points >= min(card.behaviour_points, policy.floor)
    assert all(e.points < 0 for e in entries)
    again, more = apply_decay(decayed, policy, now)
    assert more == [] and again.total == decayed.total


@settings(max_examples=200, deadline=None)
@given(
    raw=raw_events,
    lead=profiles,
    decay_at=st.lists(st.integers(min_value=0, max_value=200 * 86400), max_size=5),
    reset_after=st.one_of(st.none(), st.integers(min_value=0, max_value=30)),
)
def test_the_score_is_always_fit_plus_every_entry_ever_produced(raw, lead, decay_at, reset_after):
    events = _as_events(raw)
    card = with_fit(ScoreCard(), lead, RULES)
    produced: list[ScoreEntry] = []
    checkpoints = sorted(T0 + timedelta(seconds=s) for s in decay_at)
    for index, ev in enumerate(events):
        card, entries = score_event(card, ev, RULES, now=ev.at or T0)
        produced += entries
        if checkpoints and index % 3 == 2:
            card, entries = apply_decay(card, DECAY, checkpoints.pop(0))
            produced += entries
        if reset_after == index:
            card, entries = reset_behaviour(card, ev.at or T0, "recycled")
            produced += entries
    for when in checkpoints:
        card, entries = apply_decay(card, DECAY, when)
        produced += entries
    assert card.total == card.fit_points + sum(e.points for e in produced)
    assert card.fit_points == sum(card.fit_matches.values())
    assert card.behaviour_points == sum(t.points for t in card.tallies.values())
    assert sum(t.count for t in card.tallies.values()) == len(produced)
    assert sum(points for _, points, _ in explain(card)) == card.total


@settings(max_examples=100, deadline=None)
@given(raw=raw_events, lead=profiles)
def test_scoring_the_same_events_gives_the_same_card(raw, lead):
    def run() -> tuple[ScoreCard, list[ScoreEntry]]:
        card, entries = score(*_as_events(raw), card=with_fit(ScoreCard(), lead, RULES))
        return apply_decay(card, DECAY, T0 + timedelta(days=120))[0], entries

    first, second = run(), run()
    assert first == second
    assert first[0].model_dump_json() == second[0].model_dump_json()


@settings(max_examples=200, deadline=None)
@given(raw=raw_events, policy=policies, checks=st.integers(min_value=1, max_value=6))
def test_next_decay_at_is_when_apply_decay_first_takes_points(raw, policy, checks):
    # Events arrive in time order here (the normal case).
    events = sorted(_as_events(raw), key=lambda e: e.at or datetime.min.replace(tzinfo=UTC))
    card, _ = score(*events)
    for _ in range(checks):
        due = next_decay_at(card, policy)
        if due is None:
            _, entries = apply_decay(card, policy, T0 + timedelta(days=3650))
            assert entries == []
            return
        _, early = apply_decay(card, policy, due - timedelta(microseconds=1))
        assert early == []
        card, entries = apply_decay(card, policy, due)
        assert len(entries) == 1 and entries[0].points < 0
