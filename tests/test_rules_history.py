"""The rules history (issue 17): every version the workers load, with who changed it (the git
author of a checked-out config directory, else ``NURTURE_RULES_AUTHOR``) and what changed in
words; a threshold change is in the returns report's threshold timeline with the return rate
under each threshold. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest
from sqlmodel import Session
from temporalio.client import Client
from typer.testing import CliRunner

from nurture.access.consent import LinkSigner
from nurture.access.dashboard_links import DashboardLinks
from nurture.cli.app import app
from nurture.config.rules_source import RulesSource
from nurture.reports import ReportQuery, run_report
from nurture.store.db import make_engine
from nurture.store.read_model import HandoffRecord
from nurture.store.rules_history import rules_history
from nurture.web.app import WebSettings, create_app, serving
from tests.conftest import ARTIFACTS, TEST_RULES, TEST_SECRET, TEST_TEMPLATES

if TYPE_CHECKING:
    from playwright.async_api import Browser

MIA = "Mia Marketer <mia@corp.example>"
SAM = "Sam Sales <sam@corp.example>"


def git(repo: Path, *args: str, author: str | None = None) -> None:
    env_args = ["-c", "user.name=Nobody", "-c", "user.email=nobody@corp.example"]
    extra = ["--author", author] if author else []
    subprocess.run(
        ["git", "-C", str(repo), *env_args, *args, *extra], check=True, capture_output=True
    )


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.fixture
def checkout(tmp_path: Path) -> tuple[Path, Path]:
    """The rules and templates in a git checkout, first committed by Mia."""
    repo = tmp_path / "rules-repo"
    shutil.copytree(TEST_RULES, repo / "config")
    shutil.copytree(TEST_TEMPLATES, repo / "templates")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "rules", author=MIA)
    return repo / "config", repo / "templates"


async def test_each_version_is_recorded_with_its_author_and_what_changed(
    checkout: tuple[Path, Path],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    browser: Browser,
) -> None:
    config, templates = checkout
    repo = config.parent
    db = make_engine(database_url)
    source = RulesSource(config, templates, recheck_every=0.0)
    source.record_status_in(db)
    (first,) = rules_history(db)
    assert (first.author, first.changes) == (MIA, ["first version"])

    edit(config / "scoring.yaml", "sales_ready_threshold: 50", "sales_ready_threshold: 60")
    git(repo, "commit", "-q", "-am", "raise the threshold", author=SAM)
    source.current()
    second = rules_history(db)[0]
    assert second.author == SAM and second.previous == first.version
    assert second.changes == ["scoring.sales_ready_threshold: 50 → 60"]

    edit(config / "cadences.yaml", "{name: follow-up, delay: 3d", "{name: follow-up, delay: 5d")
    edit(templates / "t" / "touch.html", "This is step", "This is the step")
    monkeypatch.setenv("NURTURE_RULES_AUTHOR", "Ops on call")  # not committed: git cannot say
    source.current()
    third = rules_history(db)[0]
    assert third.author == "Ops on call"
    assert third.changes == [
        "cadence.general.steps.follow-up.delay: 3d → 5d",
        "template t/touch.html changed",
    ]
    source.current()  # nothing new: nothing recorded
    assert len(rules_history(db)) == 3

    monkeypatch.setenv("NURTURE_DATABASE_URL", database_url)
    shown = CliRunner().invoke(app, ["rules", "history", "--json"])
    assert shown.exit_code == 0, shown.output
    listed = json.loads(shown.output)
    assert [v["author"] for v in listed] == ["Ops on call", SAM, MIA]
    assert listed[1]["changes"] == ["scoring.sales_ready_threshold: 50 → 60"]
    text = CliRunner().invoke(app, ["rules", "history"], env={"COLUMNS": "200"})
    assert f"by {SAM}\n  scoring.sales_ready_threshold: 50 → 60\n" in text.output

    # The returns report: each threshold handoffs were made under, when it was set, by whom.
    at = datetime.now(UTC)
    with Session(db) as session:
        for n, (threshold, status) in enumerate(
            [(50, "rejected"), (50, "rejected"), (50, "accepted"),
             (60, "accepted"), (60, "rejected"), (60, "accepted"), (60, "accepted")]
        ):  # fmt: skip
            session.add(
                HandoffRecord(
                    key=f"h{n}",
                    lead_id=f"lead-{n}",
                    number=1,
                    at=at - timedelta(days=10 - n),
                    score=threshold + 5,
                    grade="B",
                    threshold=threshold,
                    status=status,
                )
            )
        session.commit()
    timeline = run_report(db, "returns", ReportQuery()).table("threshold_timeline").as_dicts()
    assert [
        (r["threshold"], r["set_by"], r["changed_from"], r["handoffs"], r["return_rate"])
        for r in timeline
    ] == [(50, MIA, None, 3, round(2 / 3, 4)), (60, SAM, 50, 4, 0.25)]
    assert timeline[1]["set_at"] == second.first_loaded_at.isoformat()

    # The dashboard's page, in Chromium: newest first, the live one marked.
    settings, signer = WebSettings(), LinkSigner(secret=TEST_SECRET)
    web = create_app(cast(Client, None), db, signer, settings, rules=source.rule_set)
    async with serving(web, "127.0.0.1", 0) as url:
        page = await browser.new_page()
        await page.goto(DashboardLinks(TEST_SECRET, url).url())
        live = await page.locator("#rules-live").inner_text()
        assert live == f"Rules in force: {third.version} (history)."
        await page.click("#rules-link")
        await page.wait_for_url(f"{url}/dashboard/*/rules")
        versions = page.locator("section.rules-version")
        assert [await a.inner_text() for a in await versions.locator(".author").all()] == [
            "Ops on call",
            SAM,
            MIA,
        ]
        assert await page.locator("#live").inner_text() == f"Live: {third.version}"
        assert "(live)" in await versions.first.locator("h2").inner_text()
        changes = await versions.nth(1).locator(".changes li").all_inner_texts()
        assert changes == ["scoring.sales_ready_threshold: 50 → 60"]
        await page.screenshot(path=str(ARTIFACTS / f"rules-history-{db.dialect.name}.png"))
        await page.close()
    db.dispose()
