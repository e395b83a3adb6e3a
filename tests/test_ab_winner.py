"""An A/B test from the read model's side (issue 17), on SQLite and PostgreSQL: leads driven
through their core under the shipped A/B test (the smb cadence's quick-start subject), their
facts written by the read model's own writer, the provider's clicks and opens planted with a
clear difference in clicks and none in opens. The engagement report names the better variant
on clicks with its probability and says there is not enough evidence on opens; the winner rule
decides nothing before every variant was sent ``after`` times, decides once it was, and from
then on every lead gets the winner, the decision in the rules history as a new version."""

from __future__ import annotations

import random
import shutil
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from activities.records import write_batches
from nurture.config.rules_source import WINNER_AUTHOR, RulesSource
from nurture.contract.ledger import TouchFact
from nurture.domain.leads import LeadProfile
from nurture.reports import ReportQuery, run_report
from nurture.store.db import WebhookEvent, make_engine
from nurture.store.rules_history import rules_history
from tests.lead_driver import CONFIG, Lead, World
from tests.lead_states import T0

TEMPLATES = CONFIG.parent / "templates"
STEP = "quick_start"
CLICK_RATE = {"afternoon": 0.05, "friday": 0.35}  # planted: friday is much better on clicks
OPEN_RATE = 0.5  # the same for both: no difference to find
AFTER = 60


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The shipped rules with the winner rule's threshold brought within a test's reach."""
    copied = tmp_path / "config"
    shutil.copytree(CONFIG, copied)
    cadences = copied / "cadences.yaml"
    text = cadences.read_text()
    shipped_rule = "winner: {metric: click, after: 1000, min_probability: 0.95}"
    assert shipped_rule in text
    cadences.write_text(text.replace(shipped_rule, shipped_rule.replace("1000", str(AFTER))))
    return copied


class Campaign:
    """Leads entering the smb cadence in waves, their quick-start emails sent, written to the
    read model, and answered by the provider as planted."""

    def __init__(self, source: RulesSource, db: object) -> None:
        self.source, self.db = source, db
        self.rng = random.Random(17)
        self.sent: Counter[str] = Counter()
        self.clicked: Counter[str] = Counter()
        self.opened: Counter[str] = Counter()
        self.leads = 0

    def wave(self, count: int) -> Counter[str]:
        """``count`` new leads through their quick-start email; the variants they got."""
        world = World(rules=self.source.current())
        start = T0 + timedelta(days=self.leads)  # each wave later than the one before
        leads = []
        for _ in range(count):
            name = f"ab{self.leads}"
            self.leads += 1
            lead = Lead(name, start, world)
            lead.signal(LeadProfile(lead_id=name, email=f"{name}@smb.example"))
            lead.wait(timedelta(days=7))
            leads.append(lead)
        batches = [lead.written() for lead in leads]
        write_batches(self.db, batches)  # type: ignore[arg-type]
        got: Counter[str] = Counter()
        with Session(self.db) as session:  # type: ignore[arg-type]
            for batch in batches:
                for fact in batch.facts:
                    if isinstance(fact, TouchFact) and fact.step == STEP:
                        assert fact.status == "sent" and fact.variant is not None
                        got[fact.variant] += 1
                        session.add_all(self.answer(batch.lead_id, fact))
            session.commit()
        self.sent.update(got)
        return got

    def answer(self, lead_id: str, touch: TouchFact) -> list[WebhookEvent]:
        """What the provider reports about one email: delivered; opened (twice, sometimes)
        at the same rate whatever the variant; clicked at the variant's planted rate."""
        assert touch.variant is not None
        kinds = [("delivered", "delivered")]
        if self.rng.random() < OPEN_RATE:
            kinds += [("open", "open")] * self.rng.choice((1, 2))
            self.opened[touch.variant] += 1
        if self.rng.random() < CLICK_RATE[touch.variant]:
            kinds.append(("click", "click"))
            self.clicked[touch.variant] += 1
        return [
            WebhookEvent(
                sg_event_id=f"{touch.key}:{n}",
                event=event,
                lead_id=lead_id,
                touch_key=touch.key,
                engagement=engagement,
                status="applied",
                payload="{}",
                received_at=touch.at + timedelta(minutes=5 + n),
            )
            for n, (event, engagement) in enumerate(kinds)
        ]


def test_the_report_names_the_better_variant_and_the_winner_rule_switches_at_its_threshold(
    config: Path, database_url: str
) -> None:
    db = make_engine(database_url)
    source = RulesSource(config, TEMPLATES, recheck_every=0, winner_check_every=0)
    source.record_status_in(db)
    before = source.current().version
    campaign = Campaign(source, db)

    # Short of the threshold: the difference is already plain, and still nothing is decided.
    got = campaign.wave(90)
    assert set(got) == {"afternoon", "friday"} and min(got.values()) < AFTER
    assert source.current().version == before and source.current().winners == {}

    report = run_report(db, "engagement", ReportQuery(cadence="smb"))
    steps = {
        (r["step"], r["variant"]): r for r in report.table("steps").as_dicts() if r["cycle"] == 1
    }
    for variant in CLICK_RATE:
        row = steps[(STEP, variant)]
        assert (row["sent"], row["unique_clicks"], row["unique_opens"]) == (
            campaign.sent[variant],
            campaign.clicked[variant],
            campaign.opened[variant],
        )
    assert steps[("welcome", None)]["sent"] == 90  # steps without a test: one row, no variant

    # Past it: the next look decides, for good, and every lead from then on gets the winner.
    while min(campaign.sent.values()) < AFTER:
        campaign.wave(20)
    rules = source.current()
    assert rules.version != before and rules.version.startswith(before)
    decided = rules.winners[f"smb/{STEP}"]
    assert decided.variant == "friday"
    assert decided.because.startswith("friday beats afternoon on clicks, ")
    assert (
        f"{campaign.sent['friday']:,} sends of friday, {campaign.sent['afternoon']:,} of afternoon"
        in decided.because
        or f"{campaign.sent['friday']:,} sends each" in decided.because
    )
    assert campaign.wave(30) == Counter({"friday": 30})

    # The decision is a rules version of its own, said in words, by the winner rule.
    newest = rules_history(db)[0]
    assert (newest.version, newest.author, newest.previous) == (
        rules.version,
        WINNER_AUTHOR,
        before,
    )
    assert newest.changes == [
        f"cadence.smb.steps.{STEP}.decided_winner: added (friday ({decided.because}))"
    ]
    # Another process starting now reads the same decision (and decides nothing again).
    again = RulesSource(config, TEMPLATES, recheck_every=0, winner_check_every=0)
    again.record_status_in(db)
    assert again.current().version == rules.version

    # The report: friday beats afternoon on clicks, with its probability; on opens, where
    # nothing differs, not enough evidence.
    report = run_report(db, "engagement", ReportQuery(cadence="smb"))
    tests = {r["metric"]: r for r in report.table("ab_tests").as_dicts()}
    assert set(tests) == {"click", "open"}
    click, opened = tests["click"], tests["open"]
    assert (click["cadence"], click["step"], click["leader"]) == ("smb", STEP, "friday")
    assert click["probability"] > 0.99
    assert click["verdict"].startswith("friday beats afternoon on clicks, ")
    shares = {v: f"{v} {campaign.clicked[v]:,} of {campaign.sent[v]:,}" for v in CLICK_RATE}
    assert all(share in click["variants"] for share in shares.values())
    assert opened["probability"] < 0.95
    assert opened["verdict"].startswith("not enough evidence yet: ")
    db.dispose()
