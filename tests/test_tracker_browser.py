"""The website tracker end to end, in a real headless Chromium driving the REAL demo pages of
``nurture up`` with the REAL snippet, against the HTTP service and a worker on the dev server
(issue 16, "Done when").

A visitor reads the home page, a blog article and the pricing page anonymously; comes back the
next day (the browser's clock is moved, so the events carry those times), downloads the
whitepaper and fills in the contact form: one lead then holds every visit, scored in order
with its original time (the blog apart from the site, the return visit counted), each once,
even when a beacon is sent again. A signed email link (``?nt=``) then identifies the same
visitor without adding anything twice. A page on an origin the site does not have, a browser
under Global Privacy Control, consent denied and a bot store nothing; a send that failed is
resent from the next page under the same ids and counted once.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from playwright.async_api import Browser, BrowserContext, Page, Route
from sqlalchemy.engine import Engine as Database
from sqlmodel import Session, col, select
from temporalio.testing import WorkflowEnvironment

from nurture.access.visitor_links import IdentifyLinks
from nurture.cli.embedded import demo_site
from nurture.contract.messages import LeadState
from nurture.domain.scoring import ScoreEntry
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store.db import make_engine
from nurture.store.lead_lookup import leads_holding
from nurture.store.tracking import Site, VisitorEvent, ensure_site
from nurture.web.app import serving
from tests.conftest import (
    ARTIFACTS,
    TEST_SECRET,
    Engine,
    running_engine,
    wait_for_state,
    wait_until,
)

ROOT = Path(__file__).parent.parent
CONFIG, TEMPLATES = ROOT / "config", ROOT / "templates"  # the demo as shipped
# crawlerdetect (rightly) takes "HeadlessChrome" for a bot: the visitor's browser says Chrome.
CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
EMAIL = "ada@fernhill-customer.example"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Demo:
    """``nurture up``'s demo website on the service, and the database behind it."""

    engine: Engine
    db: Database
    site: Site

    @property
    def url(self) -> str:
        return self.engine.web_url or ""

    def kept(self) -> list[VisitorEvent]:
        """The anonymous events kept, oldest first."""
        with Session(self.db) as session:
            query = select(VisitorEvent).order_by(col(VisitorEvent.at))
            return list(session.exec(query).all())

    def kept_paths(self) -> list[tuple[str, str]]:
        return [(e.type, _path(e.url or "")) for e in self.kept()]

    async def resend(self, body: str) -> httpx.Response:
        """A beacon sent again, as a browser on the site's page would."""
        async with httpx.AsyncClient(base_url=self.url) as http:
            return await http.post(
                f"/t/{self.site.site_key}",
                content=body,
                headers={"Origin": self.url, "User-Agent": CHROME, "Content-Type": "text/plain"},
            )


@pytest.fixture
async def demo(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> AsyncIterator[Demo]:
    """As ``nurture up`` does it: the demo site made for the HTTP port, the service given its
    key; the default config (scoring.yaml, forms.yaml) as shipped."""
    port = free_port()
    database_url = f"sqlite:///{tmp_path / 'nurture.db'}"
    db = make_engine(database_url)
    site = demo_site(db, port)
    async with running_engine(
        dev_env.client,
        standin,
        tmp_path,
        CONFIG,
        TEMPLATES,
        web=True,
        database_url=database_url,
        web_port=port,
        demo_site_key=site.site_key,
    ) as engine:
        yield Demo(engine, db, site)


@dataclass
class Wire:
    """What the browser's tracker sent to the service (``/t/…`` and ``/f/…``), as sent: the
    route only watches (the browser's own request goes on), unless told to lose answers."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    lose_answers: int = 0
    """How many next calls reach the service but whose answer never reaches the page."""

    @classmethod
    async def watch(cls, context: BrowserContext, base: str) -> Wire:
        wire = cls()
        await context.route(re.compile(rf"^{re.escape(base)}/[tf]/"), wire._route)
        return wire

    async def _route(self, route: Route) -> None:
        request = route.request
        self.calls.append((_path(request.url), request.post_data or ""))
        if self.lose_answers > 0:
            self.lose_answers -= 1
            await route.fetch()  # the service takes it; the network then fails the page
            await route.abort("connectionreset")
            return
        await route.continue_()

    def events(self) -> list[dict[str, Any]]:
        """Every event sent, in the order sent (a resent one again)."""
        return [e for path, body in self.calls if "/t/" in path for e in _events(path, body)]

    def body_with(self, page_path: str) -> str:
        """The call that sent the page view of ``page_path``."""
        for path, body in self.calls:
            if any(_path(e.get("url", "")) == page_path for e in _events(path, body)):
                return body
        raise AssertionError(f"no page view of {page_path} was sent: {self.calls}")


def _events(path: str, body: str) -> list[dict[str, Any]]:
    if not re.fullmatch(r"/t/[\w-]+", path):
        return []
    events: list[dict[str, Any]] = json.loads(body)["events"]
    return events


def _path(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


def _at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["at"].replace("Z", "+00:00"))


async def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"demo-{name}.png"), full_page=True)


def _entries(state: LeadState) -> list[tuple[str, int, datetime, str]]:
    return [_entry(e) for e in state.score.recent if e.rule != "decay"]


def _entry(e: ScoreEntry) -> tuple[str, int, datetime, str]:
    return (e.rule, e.points, e.at, _path(e.detail or ""))


async def _lead_of(demo: Demo, email: str) -> str:
    await wait_until(lambda: leads_holding(demo.db, email), what=f"a lead holding {email}")
    (lead,) = leads_holding(demo.db, email)
    return lead.lead_id


# --- the story -------------------------------------------------------------------------------


async def test_anonymous_visits_reach_the_lead_in_order_with_their_times_once_each(
    demo: Demo, browser: Browser
) -> None:
    context = await browser.new_context(user_agent=CHROME)
    wire = await Wire.watch(context, demo.url)
    page = await context.new_page()
    day_one = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    await page.clock.install(time=day_one)

    # Day one: the home page, a blog article from it, the pricing page. Nobody knows who.
    await page.goto(f"{demo.url}/demo/")
    await _shot(page, "home")
    await page.get_by_role("link", name="Why return visits matter").click()
    await page.wait_for_url("**/demo/blog/why-return-visits-matter")
    await _shot(page, "blog-article")
    await page.get_by_role("navigation").get_by_role("link", name="Pricing").click()
    await page.wait_for_url("**/demo/pricing")
    await _shot(page, "pricing")
    day_one_pages = [
        ("page_view", "/demo/"),
        ("page_view", "/demo/blog/why-return-visits-matter"),
        ("page_view", "/demo/pricing"),
    ]
    await wait_until(lambda: demo.kept_paths() == day_one_pages, what="day one's visits kept")
    assert leads_holding(demo.db, EMAIL) == []
    visitor = next(c["value"] for c in await context.cookies() if c["name"] == "_nv")
    assert re.fullmatch(r"[0-9a-f]{32}", visitor)

    # The pricing page's beacon arrives a second time: kept once.
    again = await demo.resend(wire.body_with("/demo/pricing"))
    assert again.status_code == 202 and again.json() == {"stored": 0, "dropped": 1}
    assert demo.kept_paths() == day_one_pages

    # The next day (25 hours on): back for the whitepaper, then the contact page.
    await page.clock.fast_forward(int(timedelta(hours=25).total_seconds() * 1000))
    await page.goto(f"{demo.url}/demo/whitepaper")
    await _shot(page, "whitepaper")
    await page.locator("#download").click()
    await page.wait_for_url("**/demo/whitepaper.pdf")
    await page.goto(f"{demo.url}/demo/contact")
    anonymous = [
        *day_one_pages,
        ("page_view", "/demo/whitepaper"),
        ("download", "/demo/whitepaper.pdf"),
        ("page_view", "/demo/contact"),
    ]
    await wait_until(lambda: demo.kept_paths() == anonymous, what="day two's visits kept")
    assert await page.locator("form.contact input[name=_nv]").input_value() == visitor

    # The contact form, a plain HTML form posting to the service.
    await page.fill("#email", EMAIL)
    await page.fill("#first_name", "Ada")
    await page.fill("#last_name", "Lovelace")
    await page.fill("#company", "Fernhill Customer Ltd")
    await page.fill("#title", "VP Marketing")
    await page.check("#consent")
    await _shot(page, "contact")
    await page.locator("#send").click()
    await page.wait_for_url("**/demo/thanks")
    await _shot(page, "thanks")

    lead = await _lead_of(demo, EMAIL)
    handle = demo.engine.client.get_workflow_handle(f"lead-{lead}")
    sent = {_path(e["url"]): e for e in wire.events()}
    thanks = sent["/demo/thanks"]
    state = await wait_for_state(
        handle, lambda s: any(e.at == _at(thanks) for e in s.score.recent), timeout=20
    )
    assert demo.kept() == []  # every anonymous event is the lead's now

    def at(path: str) -> datetime:
        return _at(sent[path])

    entries = _entries(state)
    form_fill = next(e for e in entries if e[0] == "form_fill")
    assert entries == [
        ("page_view", 2, at("/demo/"), "/demo/"),
        ("blog_visit", 1, at(p := "/demo/blog/why-return-visits-matter"), p),
        ("pricing_page", 10, at("/demo/pricing"), "/demo/pricing"),
        ("page_view", 2, at("/demo/whitepaper"), "/demo/whitepaper"),
        ("return_visit", 5, at("/demo/whitepaper"), "/demo/whitepaper"),
        ("download", 10, _at(sent["/demo/whitepaper.pdf"]), "/demo/whitepaper.pdf"),
        ("page_view", 2, at("/demo/contact"), "/demo/contact"),
        form_fill,
        ("page_view", 2, at("/demo/thanks"), "/demo/thanks"),
    ]
    assert form_fill[1] == 20
    assert at("/demo/pricing") < day_one + timedelta(minutes=5)  # the clock was the browser's
    assert at("/demo/whitepaper") - at("/demo/pricing") >= timedelta(hours=24)
    marked = [t.detail for t in state.timeline if "anonymous visit" in t.detail]
    assert len(marked) == 6 and f"{at('/demo/pricing'):%Y-%m-%d %H:%M} UTC" in marked[2]
    assert state.profile.first_name == "Ada" and state.profile.title == "VP Marketing"
    applied = state.events_applied

    # The thank-you page's beacon again, now that the visitor is known: the lead counts it once.
    again = await demo.resend(wire.body_with("/demo/thanks"))
    assert again.status_code == 202
    state = await wait_for_state(handle, lambda s: s.duplicates_ignored >= 1)
    assert state.events_applied == applied and _entries(state) == entries

    # Later, a link in one of our emails: the same visitor, identified again by its token.
    token = IdentifyLinks(TEST_SECRET, demo.url).token_for(lead)
    await page.goto(f"{demo.url}/demo/pricing?utm_source=email&nt={token}")
    await page.wait_for_function("!location.search.includes('nt=')")
    assert page.url == f"{demo.url}/demo/pricing?utm_source=email"
    state = await wait_for_state(handle, lambda s: len(_entries(s)) == len(entries) + 1)
    visit = [e for path, body in wire.calls for e in _events(path, body)][-1]
    assert "nt=" not in visit["url"]
    assert _entries(state) == [
        *entries,
        ("pricing_page", 10, _at(visit), "/demo/pricing?utm_source=email"),
    ]
    assert state.events_applied == applied + 1
    assert demo.kept() == []
    assert [lead.lead_id for lead in leads_holding(demo.db, EMAIL)] == [state.lead_id]
    await context.close()


# --- what must not be stored -----------------------------------------------------------------


async def test_nothing_is_stored_from_another_origin_under_gpc_consent_denied_or_for_a_bot(
    demo: Demo, browser: Browser
) -> None:
    pages = ["/demo/", "/demo/pricing"]

    # A copy of the page (snippet and all) served by another origin: the service refuses it.
    async with httpx.AsyncClient(base_url=demo.url) as http:
        copied = (await http.get("/demo/pricing")).text
    copycat = FastAPI()
    copycat.add_api_route("/pricing", lambda: HTMLResponse(copied), methods=["GET"])
    elsewhere = await browser.new_context(user_agent=CHROME)
    async with serving(copycat, "127.0.0.1", 0) as other_origin:
        refused = await _statuses_of_calls(elsewhere, f"{other_origin}/pricing", demo.url)
    assert refused == [403]

    # Global Privacy Control: the tracker sends nothing and keeps no id.
    gpc = await browser.new_context(user_agent=CHROME, extra_http_headers={"Sec-GPC": "1"})
    await gpc.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})"
    )
    wire = await Wire.watch(gpc, demo.url)
    page = await gpc.new_page()
    for path in pages:
        await page.goto(f"{demo.url}{path}")
        await page.evaluate("nurture('track', 'pricing_page')")
    await page.wait_for_timeout(500)
    assert wire.calls == [] and await gpc.cookies() == []
    assert await page.evaluate("localStorage.getItem('_nv')") is None

    # Consent denied by the page's cookie banner (calls queued before the tracker loads).
    denied = await browser.new_context(user_agent=CHROME)
    await denied.add_init_script(
        "window.nurture = window.nurture || function () {"
        " (nurture.q = nurture.q || []).push(arguments) }; nurture('consent', 'denied')"
    )
    wire = await Wire.watch(denied, demo.url)
    page = await denied.new_page()
    for path in pages:
        await page.goto(f"{demo.url}{path}")
    await page.wait_for_timeout(500)
    assert wire.calls == [] and await denied.cookies() == []

    # A bot: its calls are answered, and nothing is kept.
    bot = await browser.new_context(user_agent=GOOGLEBOT)
    answered = await _statuses_of_calls(bot, f"{demo.url}/demo/", demo.url)
    assert answered == [204]

    # A site whose pages track only after consent: nothing until the banner says yes.
    careful = ensure_site(demo.db, "careful", [demo.url], consent_default="denied")
    landing = f"{demo.url}/landing"
    careful_page = (
        f'<!DOCTYPE html><html lang="en"><head><title>Landing</title>'
        f'<script async src="{demo.url}/t.js" data-site="{careful.site_key}"'
        f' data-consent="denied"></script></head><body><h1>Landing</h1></body></html>'
    )
    banner = await browser.new_context(user_agent=CHROME)
    await banner.route(landing, lambda route: route.fulfill(body=careful_page))
    wire = await Wire.watch(banner, demo.url)
    page = await banner.new_page()
    await page.goto(landing)
    await page.wait_for_timeout(500)
    assert wire.calls == [] and await banner.cookies() == []
    assert demo.kept() == []

    # The banner's "yes": the page view waiting on this page goes out and is kept. (Until
    # then nothing was, though the pages and the service worked.)
    await page.evaluate("nurture('consent', 'granted')")
    await wait_until(lambda: len(demo.kept()) == 1, what="the page view after consent")
    assert demo.kept_paths() == [("page_view", "/landing")]
    for context in (elsewhere, gpc, denied, bot, banner):
        await context.close()


async def _statuses_of_calls(context: BrowserContext, page_url: str, base: str) -> list[int]:
    """Open ``page_url`` in ``context``; the statuses the service answered its tracker with."""
    statuses: list[int] = []
    context.on(
        "response",
        lambda r: statuses.append(r.status) if r.url.startswith(f"{base}/t/") else None,
    )
    page = await context.new_page()
    await page.goto(page_url)
    await wait_until(lambda: statuses, what=f"the tracker's call from {page_url}")
    return statuses


# --- a lost answer ---------------------------------------------------------------------------


async def test_a_call_whose_answer_was_lost_is_resent_from_the_next_page_and_kept_once(
    demo: Demo, browser: Browser
) -> None:
    context = await browser.new_context(user_agent=CHROME)
    # A browser without sendBeacon: the tracker uses fetch, and learns whether it got through.
    await context.add_init_script("delete Navigator.prototype.sendBeacon")
    wire = await Wire.watch(context, demo.url)
    wire.lose_answers = 1
    page = await context.new_page()
    await page.goto(f"{demo.url}/demo/")
    await wait_until(lambda: len(demo.kept()) == 1, what="the home page's view kept")
    unsent = await page.evaluate("JSON.parse(sessionStorage.getItem('_nq'))")
    assert [e["url"] for e in unsent] == [f"{demo.url}/demo/"]

    answers: list[dict[str, int]] = []

    async def answered(response: Any) -> None:
        if response.url.startswith(f"{demo.url}/t/"):
            answers.append(await response.json())

    page.on("response", answered)
    await page.goto(f"{demo.url}/demo/pricing")
    await wait_until(lambda: answers, what="the pricing page's call answered")
    first, second = [_events(path, body) for path, body in wire.calls]
    assert [e["id"] for e in second] == [first[0]["id"], second[1]["id"]]
    assert answers == [{"stored": 1, "dropped": 1}]
    assert demo.kept_paths() == [("page_view", "/demo/"), ("page_view", "/demo/pricing")]
    assert await page.evaluate("sessionStorage.getItem('_nq')") is None
    await context.close()


# --- the form capture ------------------------------------------------------------------------


async def test_a_captured_form_sends_its_fields_but_never_passwords_or_card_numbers(
    demo: Demo, browser: Browser
) -> None:
    """A site's own form (posting to its back end) marked ``data-nurture-form``: the tracker
    sends a copy and lets the submit go on."""
    signup = f"{demo.url}/signup"
    form_page = (
        f'<!DOCTYPE html><html lang="en"><head><title>Sign up</title>'
        f'<script async src="{demo.url}/t.js" data-site="{demo.site.site_key}"></script>'
        '</head><body><form data-nurture-form="contact" method="post" action="/signup">'
        '<input name="email" value="grace@fernhill-customer.example">'
        '<input name="first_name" value="Grace">'
        '<input name="password" type="password" value="hunter2">'
        '<input name="pass_confirm" value="hunter2">'
        '<input name="card_number" value="4242424242424242">'
        '<input name="pay" autocomplete="cc-number" value="4242424242424242">'
        '<input name="cvc" value="123">'
        '<input name="consent" type="checkbox" value="yes" checked>'
        '<input name="newsletter" type="checkbox" value="yes">'
        '<button id="go">Sign up</button></form></body></html>'
    )
    backend: list[str] = []

    async def site(route: Route) -> None:
        if route.request.method == "POST":  # the site's own back end got the submit
            backend.append(route.request.post_data or "")
            await route.fulfill(body="<p id=done>Welcome</p>", content_type="text/html")
        else:
            await route.fulfill(body=form_page, content_type="text/html")

    context = await browser.new_context(user_agent=CHROME)
    await context.route(signup, site)
    wire = await Wire.watch(context, demo.url)
    page = await context.new_page()
    await page.goto(signup)
    await page.wait_for_function("window.nurture && window.nurture.loaded")
    await page.locator("#go").click()
    await page.wait_for_selector("#done")
    assert backend and "hunter2" in backend[0]  # the submit went on, whole

    await wait_until(lambda: any("/f/" in path for path, _ in wire.calls), what="the copy")
    ((path, body),) = [(path, body) for path, body in wire.calls if "/f/" in path]
    visitor = next(c["value"] for c in await context.cookies() if c["name"] == "_nv")
    assert path == f"/f/{demo.site.site_key}/contact"
    assert json.loads(body) == {
        "visitor": visitor,
        "consent": "granted",
        "fields": {
            "email": "grace@fernhill-customer.example",
            "first_name": "Grace",
            "consent": "yes",
        },
    }
    await context.close()
