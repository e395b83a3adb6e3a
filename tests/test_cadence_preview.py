"""The cadence preview in Chromium (issue 17): every shipped cadence's timeline and each of its
emails rendered (HTML in a sandboxed frame, text beside it) for a sample profile and for a real
lead, whose hostile name stays text; a refused template edit is named with its file and line
while the emails go on rendering from the templates in force."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, cast

import httpx
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from nurture.access.consent import LinkSigner
from nurture.access.dashboard_links import DashboardLinks
from nurture.config.config_loader import DEFAULT_CONFIG_DIR, DEFAULT_TEMPLATES_DIR, load_rules
from nurture.config.rules_source import RulesSource
from nurture.domain.cadence_timeline import TimelineVariant, cadence_timeline
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import make_engine
from nurture.web.app import WebSettings, create_app, serving
from tests.conftest import ARTIFACTS, TEST_RULES, TEST_SECRET, TEST_TEMPLATES, running_engine

if TYPE_CHECKING:
    from playwright.async_api import Browser

HOSTILE_NAME = "Grace <b>{{ 7*7 }}</b>"


async def test_every_shipped_cadence_previews_in_chromium_for_samples_and_a_real_lead(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path, browser: Browser
) -> None:
    rules = load_rules(DEFAULT_CONFIG_DIR, DEFAULT_TEMPLATES_DIR)
    async with running_engine(
        dev_env.client,
        standin,
        tmp_path,
        config_dir=DEFAULT_CONFIG_DIR,
        templates_dir=DEFAULT_TEMPLATES_DIR,
        web=True,
    ) as engine:
        await engine.profile(
            lead_id="preview-grace",
            email="grace@navy.example",
            first_name=HOSTILE_NAME,
            company="US Navy",
            company_size=5000,
        )
        base = DashboardLinks(TEST_SECRET, engine.web_url or "").url()
        page = await browser.new_page(viewport={"width": 1300, "height": 900})
        await page.goto(base)  # the dashboard links the cadences
        await page.click("#cadences-link")
        await page.wait_for_url(f"{base}/cadences")
        listed = [await a.inner_text() for a in await page.locator("a.cadence").all()]
        assert listed == [c.id for c in rules.cadences.cadences]

        for cadence in rules.cadences.cadences:
            timeline = cadence_timeline(rules.cadences, cadence)
            answer = await page.goto(f"{base}/cadences/{cadence.id}")
            assert answer is not None and answer.status == 200, cadence.id
            assert await page.locator("tr.timeline-step").count() == len(timeline.steps)
            emails = page.locator("section.rendered-email")
            no_test: list[TimelineVariant | None] = [None]
            expected = [  # an A/B-tested step shows each variant's email
                (s, v)
                for s in timeline.steps
                if s.channel == "email"
                for v in s.variants or no_test
            ]
            assert await emails.count() == len(expected), cadence.id
            assert await page.locator(".template-problem").count() == 0, cadence.id
            for frame in await page.locator("section.rendered-email iframe").all():
                assert await frame.get_attribute("sandbox") == ""  # no scripts, no same origin
            first = page.frames[1]  # the first email's HTML, as the frame shows it
            assert "Ada" in await first.locator("body").inner_text() or cadence.recycle
            texts = [await t.inner_text() for t in await page.locator("pre.text-part").all()]
            assert len(texts) == len(expected) and all(t.strip() for t in texts), cadence.id
            await page.screenshot(path=str(ARTIFACTS / f"cadence-{cadence.id}.png"), full_page=True)
            for step, variant in expected:
                if variant is None:
                    continue
                shown = page.locator(f"#email-{step.cycle}-{step.step}-{variant.name}")
                subject = await shown.locator(".subject-text").inner_text()
                tail = variant.subject.rsplit("}}", 1)[-1]  # the text after the lead's field
                assert subject.endswith(tail) and "{{" not in subject, (variant.name, subject)
                await shown.screenshot(path=str(ARTIFACTS / f"cadence-ab-{variant.name}.png"))
            await emails.first.screenshot(path=str(ARTIFACTS / f"cadence-{cadence.id}-email.png"))

        # For a real lead: its name in the subject, as text (no markup, nothing evaluated).
        answer = await page.goto(f"{base}/cadences/enterprise?lead=preview-grace")
        assert answer is not None and answer.status == 200
        assert await page.locator("#chosen").inner_text() == (
            "Emails rendered for lead preview-grace, with the templates in force."
        )
        subject = await page.locator(".subject-text").first.inner_text()
        assert subject == f"{HOSTILE_NAME}, welcome to Nurture Demo Co"
        assert await page.locator(".subject-text b").count() == 0
        html = await page.frames[1].locator("body").inner_text()
        assert "49" not in html and "{{ 7*7 }}" in html
        await page.screenshot(path=str(ARTIFACTS / "cadence-enterprise-lead.png"))
        # A lead that is not one of the leads offered is not looked up: the sample is used.
        answer = await page.goto(f"{base}/cadences/enterprise?lead=someone-else")
        assert "a full profile (sample)" in await page.locator("#chosen").inner_text()
        await page.close()


async def test_a_refused_template_edit_is_named_with_file_and_line_and_the_rest_renders(
    tmp_path: Path, browser: Browser
) -> None:
    config, templates = tmp_path / "config", tmp_path / "templates"
    shutil.copytree(TEST_RULES, config)
    shutil.copytree(TEST_TEMPLATES, templates)
    engine = make_engine(f"sqlite:///{tmp_path / 'nurture.db'}")
    source = RulesSource(config, templates, recheck_every=0.0)
    source.record_status_in(engine)
    app = create_app(
        cast(Client, None),
        engine,
        LinkSigner(secret=TEST_SECRET),
        WebSettings(),
        rules=source.rule_set,
    )
    touch = templates / "t" / "touch.html"
    touch.write_text(touch.read_text() + "\n<p>{% if lead.first_name %}Hi</p>\n")  # no endif
    async with serving(app, "127.0.0.1", 0) as url:
        base = DashboardLinks(TEST_SECRET, url).url()
        page = await browser.new_page()
        await page.goto(f"{base}/cadences/general")
        notice = await page.locator("#rules-notice").inner_text()
        assert "templates/t/touch.html:" in notice and "endif" in notice.lower(), notice
        assert await page.locator("section.rendered-email").count() == 4  # from the last good
        assert await page.locator(".template-problem").count() == 0
        shown = await page.frames[1].locator("body").inner_text()
        assert "This is step hello of general (cycle 1)." in shown, shown
        await page.screenshot(path=str(ARTIFACTS / "cadence-refused-edit.png"))
        async with httpx.AsyncClient(base_url=url) as http:
            refused = await http.get("/dashboard/not-a-token/cadences/general")
            assert refused.status_code == 403
            missing = await http.get(f"{base.removeprefix(url)}/cadences/nope")
            assert missing.status_code == 404
        await page.close()
    await asyncio.sleep(0)
    engine.dispose()
