"""The person's say over their email, decided by the lead's core without Temporal: consent
records sent with a profile, ``consent: required`` cadences, and topics left on the
preferences page (a topic left stops that cadence's emails, not another's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nurture.contract.ledger import ConsentFact, TopicChoiceFact, TouchFact
from nurture.contract.messages import PreferenceChange
from nurture.domain.leads import ConsentGiven, LeadProfile
from nurture.domain.rules import Rules
from tests.lead_driver import SHIPPED_RULES, Lead, World

T0 = datetime(2026, 12, 2, 13, 0, tzinfo=UTC)  # a Wednesday, inside the send window
SMB = {"email": "tess@typo.example", "company_size": 20}  # the catch-all smb cadence
WEEK = timedelta(days=7)


def rules_with(**cadence_changes: dict[str, object]) -> Rules:
    """The shipped rules with some cadences changed (by id)."""
    book = SHIPPED_RULES.cadences
    cadences = [c.model_copy(update=cadence_changes.get(c.id, {})) for c in book.cadences]
    return SHIPPED_RULES.model_copy(
        update={
            "cadences": book.model_copy(update={"cadences": cadences}),
            "version": SHIPPED_RULES.version + "-consent",
        }
    )


def a_lead(rules: Rules = SHIPPED_RULES, **profile: object) -> Lead:
    lead = Lead("tess", T0, World(rules=rules))
    lead.signal(LeadProfile(lead_id="tess", **{**SMB, **profile}))  # type: ignore[arg-type]
    return lead


def choose(lead: Lead, request_id: str, *topics_left: str) -> None:
    """The person saves the preferences page (the workflow's update, then its loop)."""
    change = PreferenceChange(request_id=request_id, topics_left=list(topics_left))
    assert lead.core.preference_error(change) is None
    lead.core.set_preferences(change)
    lead.settle()


def touches(lead: Lead) -> list[TouchFact]:
    return [f for f in lead.written().facts if isinstance(f, TouchFact)]


def test_a_topic_left_skips_its_cadences_touches_with_the_reason_and_the_cadence_goes_on() -> None:
    lead = a_lead()
    lead.wait(timedelta(hours=1))
    assert [r.template for r in lead.world.sent] == ["smb/01_welcome.html"]
    step_before = lead.state.cadence.step_index if lead.state.cadence else -1
    choose(lead, "page-0001", "product-news")
    lead.wait(2 * WEEK)
    assert len(lead.world.sent) == 1  # nothing more about product news
    skipped = [t for t in touches(lead) if t.status == "skipped"]
    assert skipped and all(
        t.detail == "left topic product-news on the preferences page" for t in skipped
    )
    assert lead.state.touches_skipped == len(skipped)
    assert lead.state.cadence is not None and lead.state.cadence.step_index > step_before + 1
    notes = [e.detail for e in lead.state.timeline if e.kind == "touch skipped"]
    assert notes and "left topic product-news" in notes[0]

    choose(lead, "page-0002")  # back to every topic
    lead.wait(2 * WEEK)
    assert len(lead.world.sent) > 1


def test_leaving_another_topic_stops_nothing_of_this_cadence() -> None:
    lead = a_lead()
    choose(lead, "page-0001", "check-ins")  # the recycle cadence's topic
    lead.wait(2 * WEEK)
    assert len(lead.world.sent) >= 3
    assert all(r.template.startswith("smb/") for r in lead.world.sent)
    assert not [t for t in touches(lead) if t.status == "skipped"]


def test_the_same_form_sent_twice_changes_the_lead_once() -> None:
    lead = a_lead()
    choose(lead, "page-0001", "product-news")
    choose(lead, "page-0001", "product-news")
    assert lead.state.preferences is not None
    assert (lead.state.preferences.changes, lead.state.preferences.topics_left) == (
        1,
        ["product-news"],
    )
    choices = [f for f in lead.written().facts if isinstance(f, TopicChoiceFact)]
    assert [(c.topic, c.receives) for c in choices] == [("product-news", False)]


def test_a_topic_no_cadence_declares_is_refused_before_it_reaches_the_lead() -> None:
    lead = a_lead()
    change = PreferenceChange(request_id="page-0001", topics_left=["webinars"])
    assert lead.core.preference_error(change) == "no cadence has the topic(s) webinars"


def test_a_cadence_that_requires_consent_skips_leads_without_a_record_and_goes_on() -> None:
    rules = rules_with(smb={"consent": "required"})
    lead = a_lead(rules)
    lead.wait(2 * WEEK)
    assert lead.world.sent == []
    skipped = [t for t in touches(lead) if t.status == "skipped"]
    assert len(skipped) >= 3
    assert skipped[0].detail == "no consent record (cadence smb requires consent)"
    assert lead.state.cadence is not None and lead.state.cadence.step_index >= 3


def test_a_consent_sent_with_the_profile_is_kept_and_lets_the_cadence_email() -> None:
    rules = rules_with(smb={"consent": "required"})
    given = ConsentGiven(source="form", text="{{ 7*7 }} <b>Yes</b>, email me", ip="203.0.113.7")
    lead = a_lead(rules, consent=given)
    lead.wait(2 * WEEK)
    assert len(lead.world.sent) >= 3
    [record] = lead.state.consents
    assert (record.source, record.text, record.ip) == ("form", given.text, "203.0.113.7")
    assert record.at == record.recorded_at == T0  # no time given: when the lead got it
    assert lead.state.profile.consent is None  # a record, not a profile field
    [fact] = [f for f in lead.written().facts if isinstance(f, ConsentFact)]
    assert (fact.source, fact.text, fact.ip, fact.at) == ("form", given.text, "203.0.113.7", T0)
    assert "consent" not in lead.state.profile.model_dump()


def test_a_lead_without_consent_or_preferences_serializes_as_leads_did_before() -> None:
    lead = a_lead()
    dumped = lead.state.model_dump(mode="json")
    assert "consents" not in dumped and "preferences" not in dumped
    assert "consent" not in dumped["profile"]
