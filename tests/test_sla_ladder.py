"""Issue 13, finding 2: the SLA never hands a lead back to its owner or to a rep who already
missed; the escalation ladder (rep, manager, head of sales) ends in a daily reminder; the SLA
report counts one lead received per real handoff (time-skipping server, real worker)."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from nurture.domain.leads import workflow_id_for
from nurture.domain.routing import RepLimits, choose_available
from nurture.domain.rules import AwayPeriod
from nurture.reports import ReportQuery, run_report
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import make_engine
from tests.conftest import TEST_RULES, lead_id, lead_state, running_engine, wait_for_state

TODAY = datetime.now(UTC).date()


def _rules_with_latam_away(tmp_path: Path) -> Path:
    """The test rules with both LATAM reps away today (the assignment activity uses the real
    date): a LATAM lead goes to ines's manager, nate."""
    config = tmp_path / "rules"
    shutil.copytree(TEST_RULES, config)
    routing = config / "routing.yaml"
    away = f"{{from: {TODAY - timedelta(days=30)}, until: {TODAY + timedelta(days=30)}}}"
    text = routing.read_text().replace(
        "      - {from: 2026-12-21, until: 2027-01-03}", f"      - {away}"
    )
    text = text.replace("max_open_leads: 2}", f"away: [{away}]}}")
    routing.write_text(text)
    return config


async def test_an_sla_miss_never_hands_the_lead_back_and_the_chase_ends_in_a_daily_reminder(
    time_skipping_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> None:
    """Before: nate (the manager who took the lead because his pool was away) missed, and the
    lead was "reassigned" to nate again, every 4 hours, forever, with a "Lead reassigned to
    you" email and an escalation each time. Now: miss 1 (nate) alerts hana and hands the lead
    to the fallback owner maria; miss 2 (maria) alerts hana; nobody is left, so maria keeps
    it and is chased once a day, not every 4 hours."""
    env = time_skipping_env
    lead = lead_id("ladder")
    async with running_engine(
        env.client, standin, tmp_path, config_dir=_rules_with_latam_away(tmp_path)
    ) as engine:
        await engine.profile(lead_id=lead, email=f"{lead}@corp.example", region="LATAM")
        first = await engine.request_call(lead)
        assert first.owner == "nate"
        handle = engine.client.get_workflow_handle(workflow_id_for(lead))

        await env.sleep(timedelta(hours=4, minutes=1))
        second = await wait_for_state(handle, lambda s: len(s.handoff.escalations) == 1)  # type: ignore[union-attr]
        assert second.owner == "maria"
        await env.sleep(timedelta(hours=4, minutes=1))
        third = await wait_for_state(handle, lambda s: len(s.handoff.escalations) == 2)  # type: ignore[union-attr]
        assert third.owner == "maria" and third.stage == "assigned"
        assert third.handoff is not None and third.handoff.sla_due_at is not None
        assert third.handoff.sla_due_at - third.handoff.escalations[-1].at == timedelta(days=1)

        await env.sleep(timedelta(hours=20))  # five SLA periods: no chase before a day
        quiet = await lead_state(handle)
        await env.sleep(timedelta(hours=4, minutes=2))  # a day after miss 2: one reminder
        reminded = await wait_for_state(handle, lambda s: len(s.handoff.escalations) == 3)  # type: ignore[union-attr]
        emails = Counter(
            (category, m.to[0])
            for category in ("reassigned", "escalation")
            for m in standin.messages_with(lead_id=lead, category=category)
        )

    assert quiet.handoff is not None and len(quiet.handoff.escalations) == 2
    assert reminded.handoff is not None
    assert [(e.missed_by, e.notified, e.reassigned_to) for e in reminded.handoff.escalations] == [
        ("nate", ["hana"], "maria"),
        ("maria", ["hana"], None),
        ("maria", ["hana"], None),
    ]
    assert [a.rep for a in reminded.assignments] == ["nate", "maria"]
    assert emails[("reassigned", "maria@test.example")] == 1
    assert emails[("escalation", "hana@test.example")] == 3
    report = run_report(make_engine(engine.database_url), "sla", ReportQuery())
    received = {row[0]: row[1] for row in report.tables[0].rows}
    away = {row[0]: row[6] for row in report.tables[0].rows}
    assert received == {"nate": 1, "maria": 1}
    assert away == {"nate": 1, "maria": 0}


def test_the_assignment_never_returns_an_excluded_rep() -> None:
    """Finding 2 at the activity's core: the owner and the reps who missed are excluded from
    the pool, from the manager fallback and from the fallback owner; then nobody is chosen."""
    away = AwayPeriod.model_validate({"from": TODAY, "until": TODAY})
    reps = [
        RepLimits(id="ines", away=[away], manager="nate"),
        RepLimits(id="gus", away=[away], manager="nate"),
        RepLimits(id="nate", manager="hana"),
        RepLimits(id="maria", manager="hana"),
    ]

    def choose(exclude: list[str]) -> str | None:
        rep, _reasons = choose_available(
            ["ines", "gus"], 0, "round_robin", reps, {}, TODAY, "maria", exclude
        )
        return rep

    assert choose([]) == "nate"  # the pool is away: ines's manager
    assert choose(["nate"]) == "maria"  # the manager missed: the fallback owner
    assert choose(["nate", "maria"]) is None  # nobody left
    assert (
        choose_available(["ines", "bob"], 0, "first", reps, {}, TODAY, "maria", ["ines"])[0]
        == "bob"
    )


def test_the_sla_report_counts_a_lead_handed_back_to_its_owner_once(tmp_path: Path) -> None:
    """Finding 2 in the report: leads from before the fix have turns "reassigned" to the rep
    who already held them. Such a turn is no new lead received and no reassignment away;
    its misses still count, and an answer on it is late."""
    from tests.test_reports_funnel_sla_influence import day, lead_life, turn, write

    maria = [
        turn("M1", "maria", day(3, 2, 10), day(3, 2, 14), None, 1, 1, "maria"),
        turn("M1", "maria", day(3, 2, 14), day(3, 2, 18), None, 1, 1, "maria", number=2),
        turn("M1", "maria", day(3, 2, 18), day(3, 2, 22), day(3, 2, 19), number=3),
    ]
    handed_on = [
        turn("M2", "alice", day(3, 3, 10), day(3, 3, 14), None, 1, 1, "maria"),
        turn("M2", "maria", day(3, 3, 14), day(3, 3, 18), day(3, 3, 15), number=2),
    ]
    engine = write(
        f"sqlite:///{tmp_path / 'report.db'}",
        [
            lead_life("M1", day(3, 1), [(day(3, 2, 10), "assigned")], maria),
            lead_life("M2", day(3, 1), [(day(3, 3, 10), "assigned")], handed_on),
        ],
    )
    report = run_report(engine, "sla", ReportQuery(since=day(3, 1), until=day(4, 1)))
    by_rep = {
        row[0]: dict(zip(report.tables[0].columns, row, strict=True))
        for row in report.tables[0].rows
    }
    assert by_rep["maria"]["received"] == 2  # M1 once, M2 from alice
    assert by_rep["maria"]["reassigned_away"] == 0
    assert by_rep["maria"]["misses"] == 2
    assert by_rep["maria"]["responded_in_time"] == 1  # M2
    assert by_rep["maria"]["responded_late"] == 1  # M1, answered after two misses
    assert by_rep["alice"]["received"] == by_rep["alice"]["reassigned_away"] == 1
    assert report.summary["received"] == 3
