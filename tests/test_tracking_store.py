"""The website tracker's tables on SQLite and PostgreSQL: sites and their origins, anonymous
events kept once each and at most so many per visitor (the oldest go first), retention, and a
visitor's lead changing hands by the documented rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from nurture.store import tracking
from nurture.store.clock import utcnow
from nurture.store.db import make_engine
from nurture.store.ip_places import kept_ip
from nurture.store.tracking import KeptEvent, Place, SiteError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Engine

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def event(number: int, at: datetime) -> KeptEvent:
    return KeptEvent(
        f"trk-{number:04d}", "page_view", at, f"https://x.test/{number}", {"n": number}
    )


def test_origins_are_origins(engine: Engine) -> None:
    site = tracking.create_site(
        engine,
        "www",
        ["HTTPS://WWW.Example.com/", "https://www.example.com:443", "http://[::1]:8080"],
    )
    assert site.origin_list() == ["http://[::1]:8080", "https://www.example.com"]
    assert site.site_key.startswith("sk_") and len(site.site_key) > 20
    for bad in (
        "www.example.com",
        "https://x.test/path",
        "https://*.x.test",
        "ftp://x.test",
        "https://user@x.test",
        "https://x.test:99999",
    ):
        with pytest.raises(SiteError):
            tracking.create_site(engine, "other", [bad])
    with pytest.raises(SiteError, match="exists"):
        tracking.create_site(engine, "www", ["https://x.test"])
    with pytest.raises(SiteError, match="site name"):
        tracking.create_site(engine, "<b>{{x}}</b>", ["https://x.test"])
    revoked = tracking.revoke_site(engine, "www")
    assert tracking.live_site(engine, site.site_key) is None and revoked.revoked_at
    again = tracking.create_site(engine, "www", ["https://x.test"])  # the name is free again
    assert again.site_key != site.site_key
    assert tracking.site_origins(engine) == {"https://x.test"}


def test_events_are_kept_once_and_bounded_oldest_first(engine: Engine) -> None:
    key = tracking.visitor_key("sk_a", "v" * 20)
    tracking.seen(engine, key, "sk_a", Place(ip="203.0.113.0"), T0)
    first = [event(n, T0 + timedelta(minutes=n)) for n in range(8)]
    assert tracking.keep_events(engine, key, first, most=10) == 8
    assert tracking.keep_events(engine, key, [*first[:3], first[0]], most=10) == 0  # retried
    later = [event(n, T0 + timedelta(minutes=n)) for n in range(8, 14)]
    assert tracking.keep_events(engine, key, list(reversed(later)), most=10) == 6
    kept = tracking.kept_events(engine, key)
    assert [e.event_id for e in kept] == [f"trk-{n:04d}" for n in range(4, 14)]  # oldest gone
    assert kept[0].props == {"n": 4} and kept[0].at == T0 + timedelta(minutes=4)
    tracking.handed_over(engine, key, "trk-0004")
    assert len(tracking.kept_events(engine, key)) == 9


def test_retention_deletes_old_anonymous_events_and_visitors(engine: Engine) -> None:
    old, new, known = (tracking.visitor_key("sk_a", c * 20) for c in "onk")
    long_ago = utcnow() - timedelta(days=100)
    for key in (old, new, known):
        tracking.seen(engine, key, "sk_a", Place(), long_ago if key != new else utcnow())
    tracking.keep_events(engine, old, [event(1, long_ago)], most=10)
    tracking.keep_events(engine, new, [event(2, utcnow())], most=10)
    tracking.link(engine, known, "lead-1", utcnow())
    assert (
        tracking.forget_expired(engine, utcnow() + timedelta(seconds=1) - timedelta(days=90)) == 0
    )
    assert tracking.forget_expired(engine, utcnow() + timedelta(seconds=1)) == 2
    assert tracking.find_visitor(engine, old) is None  # anonymous and quiet: gone
    assert tracking.find_visitor(engine, known) is not None  # a lead's device stays


def test_last_seen_moves_by_the_minute_and_a_new_place_at_once(engine: Engine) -> None:
    key = tracking.visitor_key("sk_a", "m" * 20)
    office = Place("203.0.113.0", "GB", "London", "Acme Ltd")
    tracking.seen(engine, key, "sk_a", office, T0)
    tracking.seen(engine, key, "sk_a", office, T0 + timedelta(seconds=30))
    assert tracking.find_visitor(engine, key).last_seen_at == T0  # within the minute: no write
    tracking.seen(engine, key, "sk_a", Place(), T0 + timedelta(seconds=61))
    assert tracking.find_visitor(engine, key).last_seen_at == T0 + timedelta(seconds=61)
    home = Place("198.51.100.0", "FR", "Lyon", "Fibre SA")
    tracking.seen(engine, key, "sk_a", home, T0 + timedelta(seconds=62))
    stored = tracking.find_visitor(engine, key)
    assert (stored.ip, stored.city, stored.organisation) == ("198.51.100.0", "Lyon", "Fibre SA")
    assert stored.last_seen_at == T0 + timedelta(seconds=62)


def test_a_visitor_identified_again_belongs_to_the_new_lead(engine: Engine) -> None:
    key = tracking.visitor_key("sk_a", "w" * 20)
    tracking.seen(engine, key, "sk_a", Place(), T0)
    assert tracking.link(engine, key, "lead-a", T0) is None
    assert tracking.link(engine, key, "lead-a", T0) == "lead-a"
    assert tracking.link(engine, key, "lead-b", T0) == "lead-a"
    assert tracking.find_visitor(engine, key).lead_id == "lead-b"


def test_ip_addresses_are_kept_truncated() -> None:
    assert kept_ip("203.0.113.77") == "203.0.113.0"
    assert kept_ip("2001:db8:1234:5678::1") == "2001:db8:1234::"
    assert kept_ip("203.0.113.77", keep_full_ip=True) == "203.0.113.77"
    assert kept_ip("not an address") is None
