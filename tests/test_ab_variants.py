"""A/B tests of an email step, through the lead's core (issue 17): each lead gets one variant,
by the weights, the same one every time; leads already in the cadence keep theirs when the
marketer changes the weights; a decided winner goes to everyone from then on; each touch
records its variant. The statistics are checked here too (no Temporal: microseconds a lead)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from nurture.contract.ledger import TouchFact
from nurture.domain.leads import LeadProfile
from nurture.domain.rules import CadenceStep, DecidedWinner, Rules, StepVariant, WinnerRule
from nurture.domain.variant_stats import Arm, compare
from tests.lead_driver import SHIPPED_RULES, Lead, World
from tests.lead_states import T0

STEP = "quick_start"  # the shipped catch-all cadence's second email, two days in
SUBJECTS = {
    "a": "Set up in an afternoon (really)",
    "b": "{{ lead.company or 'Your team' }}: live by Friday",
}


def with_variants(
    rules: Rules, weights: tuple[int, int], winner: WinnerRule | None = None
) -> Rules:
    """The shipped rules with the smb cadence's quick-start email as an A/B test."""
    smb = rules.cadences.get("smb")
    assert smb is not None
    steps = [
        step.model_copy(
            update={
                "variants": [
                    StepVariant(name="a", weight=weights[0]),
                    StepVariant(name="b", weight=weights[1], subject=SUBJECTS["b"]),
                ],
                "winner": winner,
            }
        )
        if step.name == STEP
        else step
        for step in smb.steps
    ]
    cadences = [
        c.model_copy(update={"steps": steps}) if c.id == "smb" else c
        for c in rules.cadences.cadences
    ]
    book = rules.cadences.model_copy(update={"cadences": cadences})
    return rules.model_copy(
        update={"cadences": book, "version": f"{rules.version}-ab{weights[0]}:{weights[1]}"}
    )


def enrolled(world: World, name: str, at: datetime = T0) -> Lead:
    lead = Lead(name, at, world)
    lead.signal(LeadProfile(lead_id=name, email=f"{name}@smb.example", company="Acme"))
    return lead


def quick_start_sends(world: World) -> dict[str, str | None]:
    """Each lead's quick-start email: the variant it carried."""
    return {r.lead_id: r.variant for r in world.sent if r.key.endswith(f":{STEP}")}


def test_each_lead_gets_one_variant_by_the_weights_and_its_subject() -> None:
    world = World(rules=with_variants(SHIPPED_RULES, (1, 3)))
    leads = [enrolled(world, f"w{i}") for i in range(400)]
    for lead in leads:
        lead.wait(timedelta(days=7))
    sends = quick_start_sends(world)
    assert len(sends) == len(leads)
    shares = Counter(sends.values())
    assert set(shares) == {"a", "b"}
    assert 0.68 < shares["b"] / len(leads) < 0.82, shares  # 3 in 4, drawn by a hash
    for request in world.sent:
        if request.key.endswith(f":{STEP}"):
            assert request.subject == SUBJECTS[request.variant or ""]
            assert request.context["variant"] == request.variant
        else:
            assert request.variant is None and "variant" not in request.context
    # The same lead always draws the same variant: a second world sends the same.
    again = World(rules=with_variants(SHIPPED_RULES, (1, 3)))
    for name in ("w0", "w1", "w2", "w3"):
        enrolled(again, name).wait(timedelta(days=7))
    assert quick_start_sends(again) == {n: sends[n] for n in ("w0", "w1", "w2", "w3")}
    # The touch facts for the read model say which variant each sent.
    lead = leads[0]
    touches = [f for f in lead.written().facts if isinstance(f, TouchFact) and f.step == STEP]
    assert [(t.status, t.variant) for t in touches] == [("sent", sends["w0"])]
    assert any(f"variant {sends['w0']}" in e.detail for e in lead.state.timeline)


def test_leads_in_the_cadence_keep_their_variant_when_the_weights_change() -> None:
    world = World(rules=with_variants(SHIPPED_RULES, (1, 1)))
    early = [enrolled(world, f"e{i}") for i in range(200)]
    for lead in early:
        lead.wait(timedelta(hours=1))  # past the welcome email, before the quick start
    drawn = {lead.state.lead_id: lead.state.variants[f"smb/{STEP}"] for lead in early}
    assert 0.4 < Counter(drawn.values())["a"] / len(early) < 0.6
    world.rules = with_variants(SHIPPED_RULES, (1, 9))  # the marketer moves the weights
    late = [enrolled(world, f"l{i}", T0 + timedelta(hours=1)) for i in range(200)]
    for lead in early + late:
        lead.wait(timedelta(days=7))
    sends = quick_start_sends(world)
    assert {n: sends[n] for n in drawn} == drawn  # nobody enrolled before moved
    late_b = Counter(sends[lead.state.lead_id] for lead in late)["b"] / len(late)
    assert late_b > 0.82, late_b  # 9 in 10 of the leads enrolled after


def test_a_decided_winner_goes_to_everyone_from_then_on() -> None:
    rule = WinnerRule(metric="click", after=100)
    world = World(rules=with_variants(SHIPPED_RULES, (1, 1), rule))
    leads = [enrolled(world, f"d{i}") for i in range(40)]
    for lead in leads:
        lead.wait(timedelta(hours=1))
    drew_a = [lead for lead in leads if lead.state.variants[f"smb/{STEP}"] == "a"]
    assert drew_a
    decided = DecidedWinner(variant="b", because="b beats a on clicks", decided_at=T0)
    world.rules = world.rules.model_copy(
        update={"winners": {f"smb/{STEP}": decided}, "version": "with-winner"}
    )
    for lead in leads:
        lead.wait(timedelta(days=7))
    assert set(quick_start_sends(world).values()) == {"b"}
    assert all(lead.state.variants[f"smb/{STEP}"] == "a" for lead in drew_a)  # its draw kept
    # Without its winner rule (the marketer removed it) the decision no longer applies.
    step = next(s for s in world.rules.cadences.cadences[1].steps if s.name == STEP)
    assert world.rules.winner_of(world.rules.cadences.cadences[1], step) is not None
    unruled = with_variants(SHIPPED_RULES, (1, 1)).model_copy(
        update={"winners": world.rules.winners}
    )
    assert (
        unruled.winner_of(unruled.cadences.cadences[1], step.model_copy(update={"winner": None}))
        is None
    )


AB = [StepVariant(name="a"), StepVariant(name="b")]
EMAIL = {"name": "x", "delay": timedelta(0), "template": "t.html", "subject": "s"}


@pytest.mark.parametrize(
    ("step", "refusal"),
    [
        ({**EMAIL, "variants": AB[:1]}, "at least two"),
        ({**EMAIL, "variants": [AB[0], AB[0]]}, "unique"),
        ({**EMAIL, "winner": WinnerRule(after=10)}, "needs 'variants'"),
        ({"name": "x", "delay": timedelta(0), "channel": "call", "title": "Call", "variants": AB},
         "for email steps"),
    ],
)  # fmt: skip
def test_a_malformed_ab_test_is_refused_with_the_reason(step: dict[str, Any], refusal: str) -> None:
    with pytest.raises(ValidationError, match=refusal):
        CadenceStep.model_validate(step)


def test_rules_without_variants_serialise_as_before() -> None:
    """Books without A/B tests add nothing to the rules every lead's history records."""
    cadences = [
        c.model_copy(
            update={
                "steps": [s.model_copy(update={"variants": [], "winner": None}) for s in c.steps]
            }
        )
        for c in SHIPPED_RULES.cadences.cadences
    ]
    plain = SHIPPED_RULES.model_copy(
        update={"cadences": SHIPPED_RULES.cadences.model_copy(update={"cadences": cadences})}
    )
    dumped = plain.model_dump_json()
    assert '"variants"' not in dumped and '"winner"' not in dumped and '"winners"' not in dumped
    assert '"variants"' in SHIPPED_RULES.model_dump_json()  # the shipped A/B test is there


def test_a_planted_difference_is_named_with_its_probability_and_none_is_not() -> None:
    clear = compare([Arm("a", 1240, 37), Arm("b", 1240, 62)], "click")
    assert clear.decided and clear.leader == "b"
    assert 0.99 < clear.probability < 0.999
    assert clear.sentence == "b beats a on clicks, 99 % probability, 1,240 sends each"
    even = compare([Arm("a", 1000, 50), Arm("b", 1000, 51)], "click")
    assert not even.decided
    assert even.sentence.startswith("not enough evidence yet: b leads on clicks (5.1 % vs 5.0 %)")
    few = compare([Arm("a", 12, 0), Arm("b", 15, 9)], "open")
    assert (
        not few.decided
        and few.sentence == "not enough evidence yet: 15 sends of b, 12 of a, 30 each needed"
    )
    three = compare([Arm("a", 800, 40), Arm("b", 800, 90), Arm("c", 800, 44)], "click")
    assert three.decided and three.leader == "b" and abs(sum(three.probabilities) - 1) < 1e-6
    assert three.sentence.startswith("b beats a and c on clicks, over 99.9 % probability")
