"""The tracker's endpoints under abuse, over real HTTP (no Temporal needed: anonymous visits
are kept in the database): the per-visitor and per-IP rate limits answer 429 with Retry-After
and store nothing more; a body over the limit is a 413 before it is read; hostile nesting and
text that is not JSON are a 400/422, never a 500; template syntax and HTML are kept as text."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from temporalio.client import Client

from nurture.access.consent import LinkSigner
from nurture.config.tracking_settings import RateLimits, TrackingSettings
from nurture.store.db import make_engine
from nurture.store.tracking import Site, create_site, kept_events, visitor_key
from nurture.web.app import WebSettings, create_app, serving
from tests.conftest import TEST_SECRET

ORIGIN = "https://www.example.test"
PAGE = {
    "Origin": ORIGIN,
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Content-Type": "text/plain",
}
FORM_PAGE = {k: v for k, v in PAGE.items() if k != "Content-Type"}
HOSTILE = "{{ 7*7 }}{% if 1 %}<script>alert(1)</script>{% endif %}"


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Site, Any]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'nurture.db'}")
    limits = RateLimits(per_visitor="3/minute", per_ip="5/minute")
    settings = WebSettings(tracking=TrackingSettings(rate_limits=limits))
    app = create_app(cast(Client, None), engine, LinkSigner(secret=TEST_SECRET), settings)
    site = create_site(engine, "www", [ORIGIN])
    async with serving(app, "127.0.0.1", 0) as url, httpx.AsyncClient(base_url=url) as http:
        yield http, site, engine
    engine.dispose()


def body(visitor: str, **event: Any) -> str:
    at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    one = {"id": uuid.uuid4().hex, "type": "page_view", "at": at, "url": f"{ORIGIN}/", **event}
    return json.dumps({"visitor": visitor, "events": [one]})


async def test_rate_limits_per_visitor_and_per_ip(
    service: tuple[httpx.AsyncClient, Site, Any],
) -> None:
    http, site, engine = service
    busy = uuid.uuid4().hex
    answers = [
        await http.post(f"/t/{site.site_key}", content=body(busy), headers=PAGE) for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert answers[-1].headers["access-control-allow-origin"] == ORIGIN
    assert "visitor" in answers[-1].json()["detail"]
    assert len(kept_events(engine, visitor_key(site.site_key, busy))) == 3
    others = [
        await http.post(f"/t/{site.site_key}", content=body(uuid.uuid4().hex), headers=PAGE)
        for _ in range(3)
    ]
    assert [a.status_code for a in others] == [202, 429, 429]  # the address's 5 are used up
    assert "address" in others[-1].json()["detail"]


async def test_hostile_bodies_are_refused_and_hostile_text_kept_as_text(
    service: tuple[httpx.AsyncClient, Site, Any],
) -> None:
    http, site, engine = service
    url = f"/t/{site.site_key}"
    huge = await http.post(url, content="x" * (65 * 1024), headers=PAGE)
    assert huge.status_code == 413 and "limit of 64 KiB" in huge.json()["detail"]
    # A form post too: the limit named in a unit a person reads (it said "0 MiB").
    form = {"email": "long@x.test", "first_name": "n" * 200_000}
    long_form = await http.post(f"/f/{site.site_key}/contact", data=form, headers=FORM_PAGE)
    assert long_form.status_code == 413 and "64 KiB" in long_form.json()["detail"]
    deep = await http.post(url, content="[" * 20_000 + "]" * 20_000, headers=PAGE)
    assert deep.status_code in (400, 422), deep.text
    garbage = await http.post(url, content=b"\xff\xfe{", headers=PAGE)
    assert garbage.status_code == 400
    visitor = uuid.uuid4().hex
    kept = await http.post(
        url, content=body(visitor, title=HOSTILE, props={"q": HOSTILE}), headers=PAGE
    )
    assert kept.status_code == 202, kept.text
    [event] = kept_events(engine, visitor_key(site.site_key, visitor))
    assert event.props["title"] == HOSTILE and event.props["q"] == HOSTILE
