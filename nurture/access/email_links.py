"""Links in our emails to a website of ours carry the lead's identifying token (``nt=…``,
:mod:`nurture.access.visitor_links`), so the tracker on that site knows whose browser opened
the email without a form (docs/tracking.md, "Links in our emails").

Only links whose origin is a live site's are tagged: in the HTML part the ``href`` of ``<a>``
and ``<area>`` (what a reader clicks), found by the standard library's HTML parser; in the text
part the http(s) URLs, found by ``linkify-it-py``. Links to other origins, ``mailto:``, and the
service's own signed links (unsubscribe, preferences) are left exactly as they were, and so is
everything else in the email: only the tags whose ``href`` changes are written anew.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html import escape
from html.parser import HTMLParser
from urllib.parse import urlsplit

import structlog
from linkify_it import LinkifyIt
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from nurture.access.visitor_links import with_token
from nurture.store.tracking import SiteError, normalised_origin, site_origins

log = structlog.get_logger(__name__)

SITE_ORIGINS_MAX_AGE_SECONDS = 60.0
"""A site registered (or revoked) reaches the links of emails sent within this long."""
CLICKED_TAGS = frozenset({"a", "area"})
"""The elements whose ``href`` a reader follows (not ``<link>`` or ``<base>``)."""


def origin_of(url: str) -> str | None:
    """The origin of an absolute http(s) URL as sites list theirs, else None."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    try:
        return normalised_origin(f"{parts.scheme}://{parts.netloc}")
    except SiteError:  # credentials in the URL, a bad port: not a link to a site of ours
        return None


@dataclass(frozen=True)
class LinkTagging:
    """Which links of one email carry which token."""

    origins: frozenset[str]
    """Every live site's origins."""
    token: str
    """The lead's token (one per email: the same in every link, and in both parts)."""
    own_links: tuple[str, ...] = ()
    """The service's own links in this email (and anything under them): never tagged."""

    def tagged(self, url: str) -> str | None:
        """``url`` with the token, or None when it is not a link to a site."""
        target = url.strip()
        if any(target.startswith(own) for own in self.own_links if own):
            return None
        if origin_of(target) not in self.origins:
            return None
        return with_token(target, self.token)

    def html(self, html: str) -> str:
        return tag_html(html, self.tagged)

    def text(self, text: str) -> str:
        return tag_text(text, self.tagged)


# --- the HTML part --------------------------------------------------------------------------


class _HrefFinder(HTMLParser):
    """Notes where each clicked element's start tag is and what it becomes once its ``href``
    is tagged. The parser, not a pattern, decides what is a tag: markup in comments, scripts
    or attribute values is not one."""

    def __init__(self, source: str, tagged: Callable[[str], str | None]) -> None:
        super().__init__(convert_charrefs=True)
        self.source = source
        self.tagged = tagged
        self.line_starts = [0] + [i + 1 for i, char in enumerate(source) if char == "\n"]
        self.changes: list[tuple[int, str, str]] = []
        """(offset, the tag as written, the tag as it becomes), in document order."""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._note(tag, attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._note(tag, attrs)

    def _note(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in CLICKED_TAGS:
            return
        changed = False
        new_attrs: list[tuple[str, str | None]] = []
        for name, value in attrs:
            if name == "href" and value and (new := self.tagged(value)) is not None:
                value, changed = new, True
            new_attrs.append((name, value))
        written = self.get_starttag_text()
        if not changed or written is None:
            return
        line, column = self.getpos()
        offset = self.line_starts[line - 1] + column
        if self.source[offset : offset + len(written)] != written:  # never splice blindly
            log.warning("a link's tag was not where the parser said; left as it was")
            return
        ending = "/>" if written.rstrip().endswith("/>") else ">"
        rebuilt = "".join(
            f" {name}" if value is None else f' {name}="{escape(value, quote=True)}"'
            for name, value in new_attrs
        )
        self.changes.append((offset, written, f"<{tag}{rebuilt}{ending}"))


def tag_html(html: str, tagged: Callable[[str], str | None]) -> str:
    """``html`` with each clicked ``href`` that ``tagged`` changes replaced; the rest of the
    document is kept byte for byte."""
    finder = _HrefFinder(html, tagged)
    finder.feed(html)
    finder.close()
    return _spliced(html, ((offset, len(old), new) for offset, old, new in finder.changes))


# --- the text part --------------------------------------------------------------------------

_finders = threading.local()


def _links_in_text() -> LinkifyIt:
    """This thread's link finder (a ``LinkifyIt`` keeps the state of its last match, and
    activities render emails on many threads): URLs with a scheme only."""
    finder: LinkifyIt | None = getattr(_finders, "finder", None)
    if finder is None:
        options = {"fuzzy_link": False, "fuzzy_email": False, "fuzzy_ip": False}
        finder = _finders.finder = LinkifyIt(options=options)
    return finder


def tag_text(text: str, tagged: Callable[[str], str | None]) -> str:
    """``text`` with each http(s) URL that ``tagged`` changes replaced."""
    changes = []
    for match in _links_in_text().match(text) or []:
        if match.schema.lower() not in ("http:", "https:"):
            continue
        written = text[match.index : match.last_index]
        new = tagged(written)
        if new is not None:
            changes.append((match.index, len(written), new))
    return _spliced(text, changes)


def _spliced(source: str, changes: Iterable[tuple[int, int, str]]) -> str:
    parts, done = [], 0
    for offset, length, new in sorted(changes):
        parts += [source[done:offset], new]
        done = offset + length
    return "".join([*parts, source[done:]])


# --- the sites' origins, as the worker knows them -------------------------------------------


@dataclass
class SiteOrigins:
    """Every live site's origins, read from the database at most once a minute. A database
    error is logged and answered with None: the email goes out untagged rather than not at
    all (the visitor can still say who they are on a form)."""

    engine: Engine
    max_age_seconds: float = SITE_ORIGINS_MAX_AGE_SECONDS
    clock: Callable[[], float] = time.monotonic
    _read: tuple[float, frozenset[str]] | None = field(default=None, repr=False)

    def current(self) -> frozenset[str] | None:
        now = self.clock()
        if self._read is not None and now - self._read[0] < self.max_age_seconds:
            return self._read[1]
        try:
            origins = frozenset(site_origins(self.engine))
        except SQLAlchemyError as exc:
            log.warning(
                "site origins unreadable: links in this email carry no visitor token",
                error=type(exc).__name__,
            )
            return None
        self._read = (now, origins)
        return origins
