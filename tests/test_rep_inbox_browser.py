"""The rep inbox in a real headless Chromium (Debian's package, driven by Playwright): a rep
opens the inbox from the handoff alert, sees the story and the SLA countdown, rejects with a
reason, and the lead is recycled; expired and tampered links are refused."""

from __future__ import annotations

import re
import time
from pathlib import Path

from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from playwright.async_api import Browser, Page
from temporalio.testing import WorkflowEnvironment

from nurture.standins.sendgrid_standin import SendGridStandIn
from tests.conftest import (
    ARTIFACTS,
    TEST_SECRET,
    lead_id,
    running_engine,
    wait_for_email,
    wait_for_state,
)


class _EightDaysAgo(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 8 * 86400


async def open_inbox(page: Page, url: str, lead: str) -> None:
    """The inbox lists leads from Temporal's visibility, which may lag a moment."""
    for _ in range(50):
        await page.goto(url)
        if await page.locator(f"#lead-{lead}").count():
            return
        await page.wait_for_timeout(200)
    raise AssertionError(f"lead {lead} never showed in the inbox: {await page.content()}")


async def test_a_rep_rejects_a_lead_from_the_inbox_in_chromium(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path, browser: Browser
) -> None:
    lead = lead_id("inbox")
    async with running_engine(dev_env.client, standin, tmp_path, web=True) as engine:
        await engine.profile(
            lead_id=lead,
            email="ines@bigco.example",
            first_name="Ines",
            company="BigCo",
            region="EMEA",
            campaign="webinar-q4",
        )
        await engine.event(lead, "form_fill", at="2026-11-24T09:00:00Z")
        handle = await engine.event(lead, "requested_call")
        state = await wait_for_state(handle, lambda s: s.stage == "assigned")
        (alert,) = await wait_for_email(standin, lead, "handoff")
        html = alert.contents["text/html"]
        inbox_url = re.search(r'href="([^"]*/inbox/[^"/]+)"', html)
        reject_url = re.search(r'href="([^"]*/inbox/[^"/]+/reject)"', html)
        assert inbox_url and reject_url

        page = await browser.new_page()
        await open_inbox(page, inbox_url.group(1), lead)
        card = page.locator(f"#lead-{lead}")
        text = await card.inner_text()
        assert "Ines" in text and "BigCo" in text
        assert "instant: requested_call" in text and "webinar-q4" in text
        assert "form_fill" in text
        assert re.search(r"contact within 3h \d\dm \d\ds", text), text  # the JS countdown ran
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "rep-inbox.png"), full_page=True)

        await card.locator("textarea[name=reason]").fill("no budget until next year")
        await card.locator("button.reject").click()
        # Back in the inbox, told what became of the lead (finding 30: no dead end).
        await page.wait_for_url(re.compile(r"/inbox/[^/]+\?done="))
        flash = await page.locator("#flash").inner_text()
        assert "Ines: returned to marketing. Now recycled" in flash, flash
        assert await page.locator(f"#lead-{lead}").count() == 0
        state = await wait_for_state(handle, lambda s: s.stage == "recycled")
        assert state.rejections[-1].reason == "no budget until next year"
        assert state.rejections[-1].rep == alert.to[0].split("@")[0]
        assert state.cadence is not None and state.cadence.cadence_id == "recycle"

        # The alert's own reject link no longer applies: the lead is not the rep's any more,
        # answered as if it did not exist and naming no owner (finding 17).
        answer = await page.goto(reject_url.group(1))
        assert answer is not None and answer.status == 404
        assert "is not in your inbox" in await page.locator("#message").inner_text()
        assert await page.locator("#back").count() == 1

        old = URLSafeTimedSerializer(TEST_SECRET, salt="nurture.rep-links.v1", signer=_EightDaysAgo)
        expired = f"{engine.web_url}/inbox/{old.dumps([state.assignments[-1].rep, 'inbox', None])}"
        answer = await page.goto(expired)
        assert answer is not None and answer.status == 403
        assert "expired" in await page.locator("#message").inner_text()
        tampered = inbox_url.group(1)[:-4] + "AAAA"
        answer = await page.goto(tampered)
        assert answer is not None and answer.status == 403
        assert "damaged" in await page.locator("#message").inner_text()


EVIL_PAGE = """<!DOCTYPE html><title>Win a prize</title>
<form id="evil" method="post" action="{action}"><button>Claim your prize</button></form>"""


async def test_a_rep_accepts_contacts_and_wins_a_lead_from_the_inbox_in_chromium(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path, browser: Browser
) -> None:
    """Finding 30: contact details and Accept / Contacted / Won (with an amount) / Lost in
    the inbox, each through the workflow update the API uses, each landing back in the inbox
    with a flash message. Finding 18: a form posted from another site is refused."""
    lead = lead_id("win")
    async with running_engine(dev_env.client, standin, tmp_path, web=True) as engine:
        await engine.profile(
            lead_id=lead,
            email="wanda@widgets.example",
            phone="+49 30 1234567",
            first_name="Wanda",
            company="Widgets",
            region="EMEA",
        )
        handle = await engine.event(lead, "requested_call")
        await wait_for_state(handle, lambda s: s.stage == "assigned")
        (alert,) = await wait_for_email(standin, lead, "handoff")
        inbox_url = re.search(r'href="([^"]*/inbox/[^"/]+)"', alert.contents["text/html"])
        assert inbox_url

        page = await browser.new_page()
        answer = await page.goto(inbox_url.group(1))
        assert answer is not None
        assert answer.headers["cache-control"] == "private, no-store"
        assert answer.headers["x-frame-options"] == "DENY"
        await open_inbox(page, inbox_url.group(1), lead)
        card = page.locator(f"#lead-{lead}")
        assert await card.locator("a.email").get_attribute("href") == "mailto:wanda@widgets.example"
        assert await card.locator("a.phone").get_attribute("href") == "tel:+49301234567"
        assert await card.locator("button.won").count() == 0  # not before it is accepted

        # Another site's page posting to the rep's Accept button is refused (finding 18).
        accept_form = card.locator("form:has(button.accept)")
        action = f"{engine.web_url}{await accept_form.get_attribute('action')}"
        await page.route(
            "https://evil.example/**",
            lambda route: route.fulfill(
                body=EVIL_PAGE.format(action=action), content_type="text/html"
            ),
        )
        await page.goto("https://evil.example/prize")
        async with page.expect_response(action) as refused:
            await page.click("#evil button")
        assert (await refused.value).status == 403
        await wait_for_state(handle, lambda s: s.stage == "assigned")

        await open_inbox(page, inbox_url.group(1), lead)
        await card.locator("button.accept").click()
        await page.wait_for_url(re.compile(r"\?done="))
        assert (
            "Wanda: accepted. Now working; it stays in your inbox"
            in await page.locator("#flash").inner_text()
        )
        await wait_for_state(handle, lambda s: s.stage == "working")
        await open_inbox(page, inbox_url.group(1), lead)
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "rep-inbox-working.png"), full_page=True)

        await open_inbox(page, inbox_url.group(1), lead)
        await card.locator("button.contact").click()
        await page.wait_for_url(re.compile(r"\?done="))
        assert "Wanda: marked as contacted" in await page.locator("#flash").inner_text()

        await open_inbox(page, inbox_url.group(1), lead)
        await card.locator("input[name=amount]").fill("999,999,999,999,999")
        await card.locator("button.won").click()
        assert "Check the amount" in await page.locator("header").inner_text()
        await page.locator("#back").click()

        await open_inbox(page, inbox_url.group(1), lead)
        await card.locator("input[name=amount]").fill("12,500")
        await card.locator("button.won").click()
        await page.wait_for_url(re.compile(r"\?done="))
        flash = await page.locator("#flash").inner_text()
        assert "Wanda: marked as won. Now won; it has left your inbox" in flash, flash
        await page.screenshot(path=str(ARTIFACTS / "rep-inbox-after-won.png"), full_page=True)
        state = await wait_for_state(handle, lambda s: s.stage == "won")
        assert state.outcome is not None and state.outcome.amount == 12_500
