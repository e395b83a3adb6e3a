"""What every call from a website goes through before it is read (tracking events,
identification, forms): a live site key, one of its origins, no bot, no opt-out signal, and
within the rate limits. Answers carry CORS headers for the site's own origins only."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from crawlerdetect import CrawlerDetect
from fastapi import HTTPException, Request
from fastapi.responses import Response
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from sqlalchemy.engine import Engine

from nurture.config.tracking_settings import TrackingSettings
from nurture.store.ip_places import PlaceFinder, without_database
from nurture.store.tracking import Place, Site, live_site

SITE_CACHE_SECONDS = 5.0
"""A revoked site key stops working within this long in every process."""


def request_origin(request: Request) -> str | None:
    """The page's origin: the ``Origin`` header browsers send with every POST, else the
    ``Referer``'s."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        return origin.lower().rstrip("/")
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}".lower()
    return None


def cors_headers(origin: str | None) -> dict[str, str]:
    if origin is None:
        return {"Vary": "Origin"}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


@dataclass
class SiteGate:
    engine: Engine
    settings: TrackingSettings
    places: PlaceFinder | None = None
    _sites: dict[str, tuple[float, Site | None]] = field(default_factory=dict)
    _crawlers: CrawlerDetect = field(default_factory=CrawlerDetect)
    _limiter: MovingWindowRateLimiter = field(
        default_factory=lambda: MovingWindowRateLimiter(MemoryStorage())
    )

    def __post_init__(self) -> None:
        limits = self.settings.rate_limits
        self._per_visitor: RateLimitItem = parse(limits.per_visitor)
        self._per_ip: RateLimitItem = parse(limits.per_ip)
        self._forms_per_ip: RateLimitItem = parse(limits.forms_per_ip)
        if self.places is None:
            self.places = without_database(self.settings.keep_full_ip)

    async def site(self, request: Request, site_key: str) -> tuple[Site, str]:
        """The live site and the calling page's origin, which must be one of the site's
        (403 otherwise: nothing is stored)."""
        site = await self._site(site_key)
        if site is None:
            raise HTTPException(403, "unknown or revoked site key", headers=cors_headers(None))
        origin = request_origin(request)
        if origin is None or origin not in site.origin_list():
            raise HTTPException(
                403,
                "this page's origin is not one of the site's (nurture sites list)",
                headers=cors_headers(None),
            )
        return site, origin

    async def _site(self, site_key: str) -> Site | None:
        now = time.monotonic()
        cached = self._sites.get(site_key)
        if cached is not None and now - cached[0] < SITE_CACHE_SECONDS:
            return cached[1]
        site = await asyncio.to_thread(live_site, self.engine, site_key)
        if len(self._sites) > 10_000:  # random keys from a scanner must not grow it forever
            self._sites.clear()
        self._sites[site_key] = (now, site)
        return site

    def is_bot(self, request: Request) -> bool:
        agent = request.headers.get("user-agent", "")
        return not agent.strip() or bool(self._crawlers.isCrawler(agent[:1000]))

    @staticmethod
    def opted_out(request: Request) -> bool:
        """Global Privacy Control or Do Not Track: the person asked not to be tracked."""
        return request.headers.get("sec-gpc") == "1" or request.headers.get("dnt") == "1"

    def may_track(self, request: Request, site: Site, consent: str | None) -> bool:
        """Whether the visit may be kept: not for a bot, a person who opted out (GPC, DNT),
        consent denied, or a site whose default is denied without consent granted."""
        if self.is_bot(request) or self.opted_out(request):
            return False
        if consent == "denied":
            return False
        return not (site.consent_default == "denied" and consent != "granted")

    async def preflight(self, request: Request, site_key: str) -> Response:
        """What a browser asks before a ``fetch`` with a JSON body (``sendBeacon`` with text
        asks nothing): allowed for the site's own origins only."""
        _, origin = await self.site(request, site_key)
        return Response(
            status_code=204,
            headers={
                **cors_headers(origin),
                "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": "Content-Type",
                "Access-Control-Max-Age": "600",
            },
        )

    async def within_limits(
        self, request: Request, origin: str, visitor: str | None = None, *, form: bool = False
    ) -> None:
        """429 with ``Retry-After`` when this address (or visitor) has sent too much."""
        address = _client_address(request)
        checks = [(self._forms_per_ip if form else self._per_ip, "ip", address)]
        if visitor is not None:
            checks.append((self._per_visitor, "visitor", visitor))
        for item, kind, who in checks:
            if not await self._limiter.hit(item, kind, who):
                stats = await self._limiter.get_window_stats(item, kind, who)
                wait = max(1, math.ceil(stats.reset_time - time.time()))
                raise HTTPException(
                    429,
                    f"too many requests from this {'address' if kind == 'ip' else kind}: "
                    f"retry after {wait} s",
                    headers={**cors_headers(origin), "Retry-After": str(wait)},
                )

    def place(self, request: Request) -> Place:
        assert self.places is not None
        return self.places(_client_address(request))


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
