"""``/demo/``: a small company website carrying the tracker, served by ``nurture up``.

A new user clicks around it (home, blog, pricing, a whitepaper, a contact form), submits the
form, and watches their own lead appear with the visits made before they said who they were.
Every page embeds the real snippet with the demo site's key, exactly as a customer's site
would (``<script async src="…/t.js" data-site="…">``); the contact form is a plain HTML form
posting to ``/f/{site_key}/contact`` (the ``contact`` form of config/forms.yaml). Nothing a
visitor sends is rendered here: the pages are fixed text.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment

from nurture.web.demo_pdf import whitepaper

DEMO_PREFIX = "/demo"
CONTACT_FORM = "contact"
"""The form of config/forms.yaml the contact page posts to (its fields: email, first_name,
last_name, company, title and the ``consent`` checkbox; ``website`` is its honeypot)."""

ARTICLES = {
    "why-return-visits-matter": "Why return visits matter more than page views",
}
PAGES = {  # path under /demo -> (section in the menu, title); the template is demo/SECTION.html
    "/": ("home", "Know which accounts are ready to buy"),
    "/blog/": ("blog", "Blog"),
    "/pricing": ("pricing", "Pricing"),
    "/whitepaper": ("whitepaper", "Whitepaper: The Return Visit"),
    "/contact": ("contact", "Contact sales"),
    "/thanks": ("thanks", "Thank you"),
}


@dataclass
class DemoSite:
    site_key: str
    pages: Environment

    def router(self) -> APIRouter:
        router = APIRouter(prefix=DEMO_PREFIX, include_in_schema=False)
        for path, (section, title) in PAGES.items():
            router.add_api_route(path, self._page(section, title), methods=["GET"])
        router.add_api_route("/blog/{slug}", self.article, methods=["GET"])
        router.add_api_route("/whitepaper.pdf", self.whitepaper_pdf, methods=["GET"])
        return router

    def _page(self, section: str, title: str) -> Callable[[Request], Awaitable[HTMLResponse]]:
        async def page(request: Request) -> HTMLResponse:
            return self._render(request, f"demo/{section}.html", section=section, title=title)

        return page

    async def article(self, request: Request, slug: str) -> HTMLResponse:
        title = ARTICLES.get(slug)
        if title is None:
            return self._render(request, "demo/missing.html", 404, title="Not found")
        return self._render(request, f"demo/blog/{slug}.html", section="blog", title=title)

    async def whitepaper_pdf(self) -> Response:
        return Response(
            whitepaper(),
            media_type="application/pdf",
            headers={"Content-Disposition": 'inline; filename="the-return-visit.pdf"'},
        )

    def _render(
        self, request: Request, template: str, status: int = 200, **context: object
    ) -> HTMLResponse:
        # The tracker and the forms are served by this same service: the snippet points at
        # the address the browser used (127.0.0.1 or localhost), both origins of the site.
        base = str(request.base_url).rstrip("/")
        html = self.pages.get_template(template).render(
            base=base,
            site_key=self.site_key,
            form_action=f"{base}/f/{self.site_key}/{CONTACT_FORM}",
            articles=ARTICLES,
            **context,
        )
        return HTMLResponse(html, status_code=status)
