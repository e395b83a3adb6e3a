"""``GET /t.js``, the tracker every customer page loads: small (under 4 KB gzipped, as
docs/tracking.md promises), and cacheable by browsers and CDNs (``Cache-Control``, an ``ETag``
answered with 304 when it still holds), served as the file in the repository."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from nurture.access.consent import LinkSigner
from nurture.store.db import make_engine
from nurture.web.app import WebSettings, create_app, serving
from tests.conftest import TEST_SECRET

TRACKER = Path(__file__).parent.parent / "nurture" / "web" / "static" / "t.js"
GZIPPED_MAX = 4096


def test_the_tracker_is_under_4_kb_gzipped() -> None:
    source = TRACKER.read_bytes()
    assert b"sendBeacon" in source, "t.js is not the tracker"
    assert len(gzip.compress(source, compresslevel=9)) < GZIPPED_MAX


@pytest.fixture
async def service(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[str]:
    app = create_app(
        dev_env.client,
        make_engine(f"sqlite:///{tmp_path / 'nurture.db'}"),
        LinkSigner(secret=TEST_SECRET),
        WebSettings(),
    )
    async with serving(app, "127.0.0.1", 0) as url:
        yield url


async def test_the_tracker_is_served_cacheable_and_revalidated_with_its_etag(
    service: str,
) -> None:
    async with httpx.AsyncClient(base_url=service) as http:
        answer = await http.get("/t.js")
        assert answer.status_code == 200
        assert answer.content == TRACKER.read_bytes()
        assert answer.headers["content-type"].startswith("text/javascript")
        cache = {part.strip() for part in answer.headers["cache-control"].split(",")}
        assert {"public", "max-age=3600"} <= cache
        etag = answer.headers["etag"]

        unchanged = await http.get("/t.js", headers={"If-None-Match": etag})
        assert unchanged.status_code == 304 and unchanged.content == b""
        assert unchanged.headers["etag"] == etag

        other = await http.get("/t.js", headers={"If-None-Match": '"not-this-one"'})
        assert other.status_code == 200 and other.content == TRACKER.read_bytes()
