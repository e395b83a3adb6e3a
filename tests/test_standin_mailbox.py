"""Finding 23 of issue 13: in the demo nobody could read a sent email. The SendGrid stand-in
has a mailbox, as Mailpit gives developers: a list of what was sent and each message's HTML
(sandboxed: an email's scripts never run), text and links, clickable (Accept, unsubscribe).
Checked in headless Chromium on the emails a real lead gets."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from sendgrid import SendGridAPIClient
from temporalio.testing import WorkflowEnvironment

from nurture.standins.sendgrid_standin import SendGridStandIn
from tests.conftest import ARTIFACTS, lead_id, running_engine, wait_for_email, wait_for_state

if TYPE_CHECKING:
    from playwright.async_api import Browser

TOKEN = "mailbox-test-token"
HOSTILE = (
    "<p>Hello</p><script>document.body.innerHTML='PWNED'</script>"
    "<img src=x onerror=\"document.body.innerHTML='PWNED'\">"
)


def send_hostile(standin: SendGridStandIn) -> None:
    client = SendGridAPIClient(api_key="SG.test-key", host=standin.url)
    client.send(
        {
            "personalizations": [{"to": [{"email": "mallory@corp.example"}]}],
            "from": {"email": "news@acme.example"},
            "subject": "Scripted",
            "content": [
                {"type": "text/plain", "value": "Hello"},
                {"type": "text/html", "value": HOSTILE},
            ],
        }
    )


async def test_the_mailbox_shows_each_email_and_its_links_work_in_a_browser(
    dev_env: WorkflowEnvironment, browser: Browser, tmp_path: Path
) -> None:
    """Finding 23: list, HTML in a sandboxed iframe, text, clickable Accept link."""
    lead = lead_id("mailbox")
    with SendGridStandIn(control_token=TOKEN) as standin:
        async with running_engine(
            dev_env.client, standin, tmp_path, time_scale=14400, web=True
        ) as engine:
            handle = await engine.profile(
                lead_id=lead, email="ida@corp.example", first_name="Ida", last_name="Kay"
            )
            await wait_for_state(handle, lambda s: s.touches_sent == 1)
            state = await engine.request_call(lead)
            (alert,) = await wait_for_email(standin, lead, "handoff")
            send_hostile(standin)

            # Without the token the mailbox stays shut (finding 19's token guards it too).
            shut = httpx.get(f"{standin.url}/_standin/mailbox")
            assert shut.status_code == 401

            page = await browser.new_page()
            await page.goto(standin.mailbox_url)
            assert await page.title() == "Mailbox"
            rows = page.locator("tbody tr")
            assert (
                await rows.count() >= 3
            )  # touch, hand-off alert, ours (an SLA escalation may follow)
            await page.screenshot(path=str(ARTIFACTS / "mailbox-list.png"), full_page=True)
            listed = await page.inner_text("tbody")
            assert "Scripted" in listed and alert.subject in listed
            await page.get_by_role("link", name=alert.subject).click()
            await page.wait_for_load_state()
            assert await page.title() == alert.subject
            body = await page.inner_text("main")
            assert alert.to[0] in body and "Links" in body
            frame_element = page.locator("iframe")
            sandbox = await frame_element.get_attribute("sandbox") or ""
            assert "allow-scripts" not in sandbox and "allow-same-origin" not in sandbox
            frame = page.frame_locator("iframe")
            await frame.get_by_role("link", name="Accept").wait_for()
            await page.screenshot(path=str(ARTIFACTS / "mailbox-handoff.png"), full_page=True)

            # The Accept link, clicked in the email, opens the rep's page in a new tab.
            async with page.context.expect_page() as opened:
                await frame.get_by_role("link", name="Accept").click()
            accept_page = await opened.value
            await accept_page.wait_for_load_state()
            assert accept_page.url.startswith(engine.web_url or "")
            assert "/inbox/" in accept_page.url or "accept" in accept_page.url

            # The hostile email: shown, its script never ran.
            await page.goto(standin.mailbox_url)
            await page.get_by_role("link", name="Scripted").click()
            await page.wait_for_load_state()
            await asyncio.sleep(0.3)
            inner = await page.frame_locator("iframe").locator("body").inner_text()
            assert "Hello" in inner and "PWNED" not in inner
            await page.screenshot(path=str(ARTIFACTS / "mailbox-hostile.png"), full_page=True)
            assert state.owner
