"""The demo website of ``nurture up`` (``/demo/``): only there when the service is given a demo
site key; every page carries the real snippet with that key; the contact form posts the agreed
fields to ``/f/{key}/contact``; the whitepaper is a PDF a reader can open. (Driven in Chromium
with the tracker and the engine by tests/test_tracker_browser.py.)"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from nurture.access.consent import LinkSigner
from nurture.store.db import make_engine
from nurture.web.app import WebSettings, create_app, serving
from tests.conftest import TEST_SECRET

DEMO_KEY = "sk_demo_0123456789abcdef"
PAGES = [
    "/demo/",
    "/demo/blog/",
    "/demo/blog/why-return-visits-matter",
    "/demo/pricing",
    "/demo/whitepaper",
    "/demo/contact",
    "/demo/thanks",
]
CONTACT_FIELDS = ["email", "first_name", "last_name", "company", "title", "website", "consent"]
FORMS_FILE = Path(__file__).parent.parent / "config" / "forms.yaml"


async def _service(client: object, tmp_path: Path, demo_key: str | None) -> AsyncIterator[str]:
    app = create_app(
        client,  # type: ignore[arg-type]
        make_engine(f"sqlite:///{tmp_path / 'nurture.db'}"),
        LinkSigner(secret=TEST_SECRET),
        WebSettings(demo_site_key=demo_key),
    )
    async with serving(app, "127.0.0.1", 0) as url:
        yield url


@pytest.fixture
async def demo(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[str]:
    async for url in _service(dev_env.client, tmp_path, DEMO_KEY):
        yield url


async def test_every_demo_page_carries_the_snippet_with_the_demo_key(demo: str) -> None:
    snippet = f'<script async src="{demo}/t.js" data-site="{DEMO_KEY}"></script>'
    async with httpx.AsyncClient(base_url=demo) as http:
        for path in PAGES:
            page = await http.get(path)
            assert page.status_code == 200, path
            assert snippet in page.text, path
            assert "This is a demo site" in page.text, path
        missing = await http.get("/demo/blog/no-such-article")
        assert missing.status_code == 404 and snippet in missing.text
        # The address the browser used is the one the snippet points at (both are the site's).
        localhost = demo.replace("127.0.0.1", "localhost")
        other = await http.get("/demo/", headers={"Host": localhost.removeprefix("http://")})
        assert f'<script async src="{localhost}/t.js" data-site="{DEMO_KEY}">' in other.text


async def test_the_contact_form_posts_the_agreed_fields_to_the_forms_endpoint(demo: str) -> None:
    async with httpx.AsyncClient(base_url=demo) as http:
        page = (await http.get("/demo/contact")).text
    form = re.search(
        r'<form class="contact" method="post" action="([^"]+)">(.*?)</form>', page, re.S
    )
    assert form, page
    assert html.unescape(form.group(1)) == f"{demo}/f/{DEMO_KEY}/contact"
    assert re.findall(r'<input[^>]* name="([^"]+)"', form.group(2)) == CONTACT_FIELDS
    for field in CONTACT_FIELDS:  # every field has its label (the honeypot's says: leave empty)
        assert re.search(rf'<label[^>]* for="{field}"', form.group(2)), field


async def test_the_contact_form_is_the_one_forms_yaml_ships_and_shows_its_consent_wording(
    demo: str,
) -> None:
    """What the person is shown beside the box is what each consent keeps as evidence."""
    (contact,) = [
        f for f in yaml.safe_load(FORMS_FILE.read_text())["forms"] if f["name"] == "contact"
    ]
    assert set(contact["fields"]) | {contact["honeypot"], contact["consent"]["field"]} == set(
        CONTACT_FIELDS
    )
    assert contact["thank_you"] == "/demo/thanks"
    async with httpx.AsyncClient(base_url=demo) as http:
        page = (await http.get("/demo/contact")).text
    label = re.search(r'<label class="check" for="consent">.*?<span>(.*?)</span>', page, re.S)
    assert label and html.unescape(label.group(1)) == contact["consent"]["text"]


async def test_the_whitepaper_is_a_pdf_whose_cross_references_hold(demo: str) -> None:
    async with httpx.AsyncClient(base_url=demo) as http:
        answer = await http.get("/demo/whitepaper.pdf")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/pdf"
    pdf = answer.content
    assert pdf.startswith(b"%PDF-1.") and pdf.rstrip().endswith(b"%%EOF")
    # What a reader does first: startxref points at the table, each entry at its object.
    startxref = int(re.findall(rb"startxref\s+(\d+)", pdf)[-1])
    assert pdf[startxref:].startswith(b"xref")
    entries = re.findall(rb"(\d{10}) 00000 n ", pdf[startxref:])
    assert len(entries) == 5
    for number, offset in enumerate(entries, start=1):
        assert pdf[int(offset) :].startswith(b"%d 0 obj" % number)
    assert b"(The Return Visit: a field guide) Tj" in pdf


async def test_without_a_demo_key_there_is_no_demo_site(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    async for url in _service(dev_env.client, tmp_path, None):
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/demo/")).status_code == 404
            assert (await http.get("/demo/whitepaper.pdf")).status_code == 404
