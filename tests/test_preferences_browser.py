"""The preferences page in a real headless Chromium, on the dev server with the SendGrid
stand-in: the person follows the footer's link of a product-news email, unticks product news
and saves; the cadence's next product-news touch is not sent (skipped, with the reason), and
once the lead is in a cadence about another topic (check-ins, after sales returned it) that
topic's email goes out. The page refuses altered links, forms from other sites, unknown
topics, a malformed form and one that does not say which topics it showed (422, in words,
naming the form's field and never the lead's id), and a form sent twice changes the lead
once."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
from playwright.async_api import Browser
from temporalio.testing import WorkflowEnvironment

from nurture.client.sales import act, read_state
from nurture.contract.messages import RejectRequest
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import make_engine
from nurture.store.read_model import TopicChoiceRow
from tests.conftest import (
    ARTIFACTS,
    TEST_RULES,
    TEST_TEMPLATES,
    lead_id,
    running_engine,
    wait_for_email,
    wait_for_state,
    wait_until,
)

CADENCES = """
sender: {email: marketing@test.example, name: Test Co}
send_window: anytime
cadences:
  - id: news
    name: Product news
    topic: product-news
    steps:
      - {name: first, delay: 0s, template: t/touch.html, subject: "News 1"}
      - {name: second, delay: 8h, template: t/touch.html, subject: "News 2"}
      - {name: third, delay: 1h, template: t/touch.html, subject: "News 3"}
  - id: recycle
    name: Check-ins for returned leads
    recycle: true
    topic: check-ins
    steps:
      - {name: back, delay: 1h, template: t/touch.html, subject: "Check-in 1"}
"""
LAYOUT = (  # rep alerts share it: they have no footer links
    "<html><body>{% block content %}{% endblock %}"
    "{% if preferences_url is defined %}<p class='footer'>"
    '<a href="{{ preferences_url }}">Email preferences</a> '
    '<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>{% endif %}</body></html>'
)


def rules_and_templates(tmp_path: Path) -> tuple[Path, Path]:
    config, templates = tmp_path / "config", tmp_path / "templates"
    shutil.copytree(TEST_RULES, config)
    shutil.copytree(TEST_TEMPLATES, templates)
    (config / "cadences.yaml").write_text(CADENCES)
    (templates / "layout.html").write_text(LAYOUT)
    return config, templates


def subjects(standin: SendGridStandIn, lead: str) -> list[str]:
    return [m.subject for m in standin.messages_with(lead_id=lead, category="touch")]


async def test_leaving_a_topic_in_chromium_stops_its_next_touch_and_not_another_topics(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path, browser: Browser
) -> None:
    lead = lead_id("prefs")
    config, templates = rules_and_templates(tmp_path)
    # An hour is a second: the person has 8 s to save before the second news touch, and the
    # lead's SLA timer (4 h, armed at the handoff) wakes it for the check-in 4 s after it.
    async with running_engine(
        dev_env.client, standin, tmp_path, config, templates, time_scale=3600, web=True
    ) as engine:
        handle = await engine.profile(
            lead_id=lead, email="pat@prefs.example", first_name="Pat", region="EMEA"
        )
        (first,) = await wait_for_email(standin, lead, "touch")
        link = re.search(r'href="([^"]*/p/[^"]+)"', first.contents["text/html"])
        assert link, first.contents["text/html"]

        page = await browser.new_page()
        await page.goto(link.group(1))
        assert "pat@prefs.example" in await page.inner_text("main")
        news, check_ins = page.locator("#topic-product-news"), page.locator("#topic-check-ins")
        assert await news.is_checked() and await check_ins.is_checked()
        await news.uncheck()
        await page.locator("#save").click()
        await page.wait_for_selector("#saved")
        assert "You will get emails about Check ins." in await page.inner_text("#saved")
        assert not await page.locator("#topic-product-news").is_checked()
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "preferences.png"), full_page=True)

        # The news cadence's next touches come due: skipped, with the reason, and not sent.
        state = await wait_for_state(handle, lambda s: s.touches_skipped >= 2, timeout=20)
        assert state.preferences is not None and state.preferences.topics_left == ["product-news"]
        skipped = [e.detail for e in state.timeline if e.kind == "touch skipped"]
        assert "news/second (cycle 1): left topic product-news on the preferences page" in skipped
        assert subjects(standin, lead) == ["News 1"]

        # Sales returns the lead: its check-ins cadence is another topic, and it goes out.
        state = await engine.request_call(lead)
        assert state.owner is not None
        await act(engine.client, lead, "reject", RejectRequest(rep=state.owner, reason="later"))
        await wait_until(
            lambda: "Check-in 1" in subjects(standin, lead), timeout=15, what="the check-in email"
        )
        assert subjects(standin, lead) == ["News 1", "Check-in 1"]

        # The choice is in the read model: the topic left, once.
        db = make_engine(engine.database_url)
        await wait_until(lambda: _choices(db, lead), what="the topic choice row")
        assert _choices(db, lead) == [("product-news", False)]

        await _the_page_refuses_what_it_must(engine.web_url or "", link.group(1), lead, engine)

        # "Unsubscribe from all" is the unsubscribe link's own form: the lead is suppressed.
        await page.goto(link.group(1))
        await page.locator("#unsubscribe").click()
        await page.wait_for_selector("#done")
        await wait_for_state(handle, lambda s: s.email_suppressed is not None)


def _choices(db: object, lead: str) -> list[tuple[str, bool]]:
    from sqlmodel import Session, select

    with Session(db) as session:  # type: ignore[arg-type]
        rows = session.exec(select(TopicChoiceRow).where(TopicChoiceRow.lead_id == lead)).all()
        return [(row.topic, row.receives) for row in rows]


async def _the_page_refuses_what_it_must(
    web_url: str, link: str, lead: str, engine: object
) -> None:
    path = link.removeprefix(web_url)
    async with httpx.AsyncClient(base_url=web_url) as http:
        altered = path[:-1] + ("A" if path[-1] != "A" else "B")
        answer = await http.get(altered)
        assert answer.status_code == 403 and "damaged" in answer.text
        unsubscribe_token = re.search(r'action="(/u/[^"]+)"', (await http.get(path)).text)
        assert unsubscribe_token  # "unsubscribe from all" is the unsubscribe link's form
        assert (await http.get(path.replace("/p/", "/u/"))).status_code == 403  # another kind

        form = {"request_id": "form-00000001", "shown": ["product-news", "check-ins"]}
        cross = await http.post(path, data=form, headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        # A form that does not say which topics it showed (a bare POST) re-subscribed the
        # person to every topic: it changes nothing, and says which field is missing.
        bare = await http.post(path, data={"request_id": "abcdefgh41"})
        assert bare.status_code == 422 and "(shown)" in bare.text, bare.text
        assert "nothing was changed" in bare.text and 'id="saved"' not in bare.text
        unknown = await http.post(path, data={**form, "shown": ["webinars"]})
        assert unknown.status_code == 422 and "Webinars (shown)" in unknown.text, unknown.text
        malformed = await http.post(path, data={**form, "request_id": "{{7*7}}"})
        assert malformed.status_code == 422 and "(request_id)" in malformed.text
        bad_topic = await http.post(path, data={**form, "shown": ["{{7*7}}"]})
        assert bad_topic.status_code == 422 and "(shown)" in bad_topic.text, bad_topic.text
        for refused in (bare, unknown, malformed, bad_topic):  # internal names stay inside
            assert lead not in refused.text and "topics_left" not in refused.text
        for _ in range(2):  # sent twice: one change
            saved = await http.post(path, data={**form, "topic": ["check-ins"]})
            assert saved.status_code == 200 and 'id="saved"' in saved.text
    client = engine.client  # type: ignore[attr-defined]
    state = await read_state(client, lead)
    assert state.preferences is not None
    assert (state.preferences.changes, state.preferences.topics_left) == (2, ["product-news"])
