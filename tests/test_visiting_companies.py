"""Visiting companies (issue 16, item 6): an IP database in the MaxMind format (tiny ones built
with ``mmdb-writer``, tests/ip_database.py) gives each visit a country, city and network
organisation; the IP address is kept with its last octet zeroed unless configured otherwise;
the lead gets the place in its profile on identification, and loses it with the visitor's
address when it is forgotten; a missing or broken database stops the service at start and
``nurture config check`` names it; the dashboard's "Companies visiting now" table shows
anonymous visitors' organisations, identified leads and their best score, in Chromium."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
import pytest
from playwright.async_api import Browser
from sqlalchemy.engine import Engine as SqlEngine
from sqlmodel import Session
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from nurture.access.auth import create_key
from nurture.access.consent import LinkSigner
from nurture.access.dashboard_links import DashboardLinks
from nurture.access.visitor_links import IdentifyLinks
from nurture.config.config_loader import ConfigError
from nurture.config.tracking_settings import TrackingSettings, load_tracking_settings
from nurture.domain.leads import workflow_id_for
from nurture.reports.visiting import MAX_LISTED, companies_visiting
from nurture.standins.sendgrid_standin import SendGridStandIn
from nurture.store import tracking
from nurture.store.db import make_engine
from nurture.store.ip_places import (
    IpDatabaseError,
    MaxMindPlaces,
    from_settings,
    open_database,
)
from nurture.store.read_model import LeadRecord
from nurture.store.tracking import Place, Site, Visitor, create_site, visitor_key
from nurture.web.app import WebSettings, create_app, serving
from tests.conftest import (
    ARTIFACTS,
    TEST_RULES,
    TEST_SECRET,
    TEST_TEMPLATES,
    wait_for_state,
    wait_until,
)
from tests.ip_database import HOSTILE_ORGANISATION, write_city_and_asn, write_database
from tests.test_dashboard_browser import serving_page
from tests.test_erasure import _cli as nurture_cli

if TYPE_CHECKING:
    from tests.web_api import Api

ORIGIN = "https://www.example.test"
BROWSER = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
ACME_VISITOR_IP = "203.0.113.77"  # the tests' .mmdb: Berlin, DE, "Acme GmbH"


def geo_settings(directory: Path, **changes: Any) -> TrackingSettings:
    city, asn = write_city_and_asn(directory)
    return TrackingSettings(ip_database=city, asn_database=asn, **changes)


def page_view(path: str, at: datetime | None = None) -> dict[str, Any]:
    moment = at or datetime.now(UTC)
    return {
        "id": uuid.uuid4().hex,
        "type": "page_view",
        "at": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "url": f"{ORIGIN}{path}",
    }


async def post(
    http: httpx.AsyncClient, path: str, body: dict[str, Any], from_ip: str
) -> httpx.Response:
    """A call from a page, arriving through a proxy on this machine that names the visitor's
    address (uvicorn trusts ``X-Forwarded-For`` from 127.0.0.1 only: docs/tracking.md)."""
    headers = {
        "Origin": ORIGIN,
        "User-Agent": BROWSER,
        "Content-Type": "text/plain",
        "X-Forwarded-For": from_ip,
    }
    return await http.post(path, content=json.dumps(body), headers=headers)


def stored_visitor(db: SqlEngine, site: Site, tracker_id: str) -> Visitor:
    visitor = tracking.find_visitor(db, visitor_key(site.site_key, tracker_id))
    assert visitor is not None
    return visitor


# --- the place finder ---------------------------------------------------------------------


def test_the_finder_places_an_address_from_city_asn_and_company_databases(
    tmp_path: Path,
) -> None:
    finder = from_settings(geo_settings(tmp_path))
    assert isinstance(finder, MaxMindPlaces)
    try:
        assert finder("203.0.113.7") == Place(
            ip="203.0.113.0", country="DE", city="Berlin", organisation="Acme GmbH"
        )
        assert finder("2001:db8:1:2::5") == Place(
            ip="2001:db8:1::", country="PT", city="Lisbon", organisation="Lisboa Dados SA"
        )
        # Known to the database with no place, unknown to it, and not an address at all.
        assert finder("192.0.2.9") == Place(ip="192.0.2.0")
        assert finder("8.8.8.8") == Place(ip="8.8.8.0")
        assert finder("unknown") == Place()
    finally:
        finder.close()

    full = from_settings(geo_settings(tmp_path / "full", keep_full_ip=True))
    assert full("203.0.113.7").ip == "203.0.113.7"
    assert full("2001:db8:1:2::5").ip == "2001:db8:1:2::5"
    assert from_settings(TrackingSettings())("203.0.113.7") == Place(ip="203.0.113.0")

    # A company database (GeoIP2 Enterprise's traits) names the company, which beats the
    # network's owner from the ASN database; its ISP is used when it names no company; an
    # IPv4-only database asked an IPv6 address answers nothing, without failing the visit.
    enterprise = write_database(
        tmp_path / "enterprise.mmdb",
        "GeoIP2-Enterprise",
        {
            "203.0.113.0/25": {
                "traits": {"organization": "Acme Research Lab", "isp": "Telekom"},
                "country": {"iso_code": "DE"},
            },
            "203.0.113.128/25": {"traits": {"isp": "Telekom"}, "city": {"names": {}}},
            "198.51.100.0/24": {"traits": {"organization": "x" * 500}},
        },
    )
    v4_only = tmp_path / "v4.mmdb"
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=4, database_type="GeoLite2-Country")
    writer.insert_network(IPSet(["203.0.113.0/24"]), {"registered_country": {"iso_code": "AT"}})
    writer.to_db_file(str(v4_only))
    company = MaxMindPlaces(
        [open_database(v4_only, "ip_database"), open_database(enterprise, "asn_database")]
    )
    # Where the address is placed beats where its network is registered (any database).
    assert company("203.0.113.7") == Place(
        ip="203.0.113.0", country="DE", organisation="Acme Research Lab"
    )
    assert company("203.0.113.200") == Place(ip="203.0.113.0", country="AT", organisation="Telekom")
    assert company("198.51.100.1").organisation == "x" * 200  # cut to the column's size
    assert company("2001:db8:1::1") == Place(ip="2001:db8:1::")
    company.close()


def test_a_missing_or_broken_ip_database_is_a_config_error_naming_it(tmp_path: Path) -> None:
    from nurture.cli.app import app

    config = tmp_path / "config"
    shutil.copytree(TEST_RULES, config)
    (config / "tracking.yaml").write_text("ip_database: geo/GeoLite2-City.mmdb\n")
    with pytest.raises(ConfigError) as missing:
        load_tracking_settings(config)
    (problem,) = missing.value.problems
    assert problem.startswith(f"{config / 'tracking.yaml'}: ip_database: ")
    assert f"{config / 'geo' / 'GeoLite2-City.mmdb'} does not exist" in problem

    def config_check() -> tuple[int, str]:
        result = CliRunner().invoke(
            app,
            ["config", "check", "--config", str(config), "--templates", str(TEST_TEMPLATES)],
        )
        return result.exit_code, result.output

    code, output = config_check()
    assert code == 2, output
    assert "tracking.yaml: ip_database:" in output and "does not exist" in output

    (config / "geo").mkdir()
    (config / "geo" / "GeoLite2-City.mmdb").write_text("<html>a download page</html>")
    code, output = config_check()
    assert code == 2 and "is not a MaxMind DB file" in output, output
    (config / "geo" / "GeoLite2-City.mmdb").unlink()

    write_city_and_asn(config / "geo")
    (config / "tracking.yaml").write_text(
        "ip_database: geo/GeoLite2-City.mmdb\nasn_database: geo/nowhere.mmdb\n"
    )
    code, output = config_check()
    assert code == 2 and "asn_database:" in output and "nowhere.mmdb" in output, output
    (config / "tracking.yaml").write_text(
        "ip_database: geo/GeoLite2-City.mmdb\nasn_database: geo/GeoLite2-ASN.mmdb\n"
    )
    code, output = config_check()
    assert code == 0, output
    settings = load_tracking_settings(config)  # relative to the config dir
    assert settings.asn_database == config / "geo" / "GeoLite2-ASN.mmdb"
    with pytest.raises(IpDatabaseError, match=r"ip_database: .* does not exist"):
        from_settings(TrackingSettings(ip_database=tmp_path / "gone.mmdb"))


# --- the service ----------------------------------------------------------------------------


@asynccontextmanager
async def anonymous_only_service(
    db: SqlEngine, settings: TrackingSettings
) -> AsyncIterator[httpx.AsyncClient]:
    """The real HTTP service; anonymous visits and the dashboard need no Temporal."""
    app = create_app(
        cast(Client, None), db, LinkSigner(secret=TEST_SECRET), WebSettings(tracking=settings)
    )
    async with serving(app, "127.0.0.1", 0) as url, httpx.AsyncClient(base_url=url) as http:
        yield http


async def test_the_ip_is_kept_truncated_unless_configured_whole(tmp_path: Path) -> None:
    db = make_engine(f"sqlite:///{tmp_path / 'nurture.db'}")
    site = create_site(db, "www", [ORIGIN])
    for keep_full_ip, kept in ((False, "203.0.113.0"), (True, ACME_VISITOR_IP)):
        settings = geo_settings(tmp_path / str(keep_full_ip), keep_full_ip=keep_full_ip)
        async with anonymous_only_service(db, settings) as http:
            visitor = uuid.uuid4().hex
            body = {"visitor": visitor, "events": [page_view("/pricing")]}
            answer = await post(http, f"/t/{site.site_key}", body, ACME_VISITOR_IP)
            assert answer.status_code == 202, answer.text
            stored = stored_visitor(db, site, visitor)
            assert (stored.ip, stored.country, stored.city) == (kept, "DE", "Berlin")
            assert stored.organisation == "Acme GmbH"
            (event,) = tracking.kept_events(db, stored.visitor_key)
            assert event.props["visit_org"] == "Acme GmbH"
            assert event.props["visit_city"] == "Berlin"
            assert ACME_VISITOR_IP not in json.dumps(event.props)
    db.dispose()


@pytest.fixture
async def geo_api(
    dev_env: WorkflowEnvironment, standin: SendGridStandIn, tmp_path: Path
) -> AsyncIterator[Api]:
    """The service with a worker and the tests' IP databases."""
    from tests.web_api import running_api  # a plugin module: imported once pytest is up

    async with running_api(
        dev_env, standin, tmp_path, tracking=geo_settings(tmp_path / "geo")
    ) as api:
        yield api


async def test_the_lead_gets_the_place_and_forgetting_it_clears_the_visitors_address(
    geo_api: Api,
) -> None:
    api, db = geo_api, make_engine(geo_api.engine.database_url)
    site = create_site(db, "www", [ORIGIN])
    visitor = uuid.uuid4().hex
    earlier = datetime.now(UTC) - timedelta(hours=2)
    body = {"visitor": visitor, "events": [page_view("/", earlier), page_view("/pricing")]}
    answer = await post(api.http, f"/t/{site.site_key}", body, ACME_VISITOR_IP)
    assert answer.json() == {"stored": 2, "dropped": 0}

    email = f"ada.{uuid.uuid4().hex[:8]}@acme.example"
    answer = await post(
        api.http,
        f"/t/{site.site_key}/identify",
        {"visitor": visitor, "email": email, "first_name": "Ada"},
        ACME_VISITOR_IP,
    )
    assert answer.status_code == 200, answer.text
    lead = IdentifyLinks(TEST_SECRET, "").new_lead_id(email)
    handle = api.engine.client.get_workflow_handle(workflow_id_for(lead))
    state = await wait_for_state(
        handle, lambda s: s.events_applied == 2 and "visit_org" in s.profile.custom
    )
    assert state.profile.custom == {
        "visit_country": "DE",
        "visit_city": "Berlin",
        "visit_org": "Acme GmbH",
    }
    assert state.profile.country is None  # the person's own field: only what they say
    stored = stored_visitor(db, site, visitor)
    assert stored.lead_id == lead and stored.ip == "203.0.113.0"

    target = api.engine.client.service_client.config.target_host
    forgotten = await asyncio.to_thread(
        nurture_cli,
        api.engine.database_url,
        target,
        "lead",
        "forget",
        lead,
        "--task-queue",
        api.engine.task_queue,
    )
    assert forgotten.returncode == 0, forgotten.stderr
    stored = stored_visitor(db, site, visitor)
    assert stored.lead_id is not None and stored.lead_id.startswith("erased-")
    assert (stored.ip, stored.country, stored.city) == (None, None, None)
    seen_before = stored.last_seen_at

    # The same browser comes back: nothing of it is kept, not even where it came from.
    again = {"visitor": visitor, "events": [page_view("/pricing")]}
    answer = await post(api.http, f"/t/{site.site_key}", again, ACME_VISITOR_IP)
    assert answer.json() == {"stored": 0, "dropped": 1}
    stored = stored_visitor(db, site, visitor)
    assert (stored.ip, stored.country, stored.city) == (None, None, None)
    assert stored.last_seen_at == seen_before
    assert tracking.kept_events(db, stored.visitor_key) == []
    assert companies_visiting(db, datetime.now(UTC)) == []  # not shown as visiting either
    db.dispose()


# --- companies visiting now -----------------------------------------------------------------


def seen_from(
    db: SqlEngine, site: Site, place: Place, at: datetime, lead: str | None = None
) -> str:
    """A visitor recorded as the service records one (and joined to ``lead``)."""
    key = visitor_key(site.site_key, uuid.uuid4().hex)
    tracking.seen(db, key, site.site_key, place, at)
    if lead is not None:
        tracking.link(db, key, lead, at)
    return key


def scored_lead(db: SqlEngine, lead: str, score: int) -> None:
    with Session(db) as session:
        session.add(
            LeadRecord(lead_id=lead, workflow_id=f"lead-{lead}", stage="nurturing", score=score)
        )
        session.commit()


def test_companies_visiting_now_on_sqlite_and_postgresql(database_url: str) -> None:
    db = make_engine(database_url)
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        site = create_site(db, "www", [ORIGIN])
        berlin = Place(ip="203.0.113.0", country="DE", city="Berlin", organisation="Acme GmbH")
        munich = Place(ip="203.0.114.0", country="DE", city="Munich", organisation="Acme GmbH")
        scored_lead(db, "acme-1", 42)
        scored_lead(db, "acme-2", 77)
        scored_lead(db, "erased-0123", 99)
        seen_from(db, site, berlin, now - timedelta(hours=3), "acme-1")
        seen_from(db, site, berlin, now - timedelta(hours=2), "acme-2")
        seen_from(db, site, munich, now - timedelta(minutes=30))  # the latest: Munich
        seen_from(db, site, munich, now - timedelta(minutes=20), "erased-0123")  # forgotten
        seen_from(db, site, berlin, now - timedelta(minutes=10), "acme-2")  # acme-2 again
        lab = Place(ip="198.51.100.0", country="FR", organisation="Lab SARL")
        seen_from(db, site, lab, now - timedelta(minutes=5))
        tie = now - timedelta(minutes=7)  # two visitors at the same moment: one row
        seen_from(db, site, Place(ip="192.0.2.0", city="Graz", organisation="Tie AG"), tie)
        seen_from(db, site, Place(ip="192.0.2.0", city="Linz", organisation="Tie AG"), tie)
        seen_from(db, site, Place(ip="192.0.2.0"), now)  # no organisation known: not listed
        old = Place(ip="2001:db8:1::", organisation="Lisboa Dados SA")
        seen_from(db, site, old, now - timedelta(hours=25))  # before the last 24 hours

        companies = companies_visiting(db, now)
        assert [c.organisation for c in companies] == ["Lab SARL", "Tie AG", "Acme GmbH"]
        lab_row, tied, acme = companies
        assert tied.visitors == 2 and tied.city in ("Graz", "Linz")
        assert (lab_row.visitors, lab_row.leads, lab_row.best_score) == (1, 0, None)
        assert lab_row.location == "FR"
        assert (acme.visitors, acme.leads, acme.best_score) == (4, 2, 77)
        assert acme.location == "Berlin, DE"  # where its latest visit came from
        assert acme.last_activity == now - timedelta(minutes=10)

        for n in range(MAX_LISTED + 5):
            place = Place(ip="203.0.113.0", organisation=f"Company {n:03d}")
            seen_from(db, site, place, now - timedelta(hours=1, minutes=n))
        listed = companies_visiting(db, now)
        assert len(listed) == MAX_LISTED
        assert [c.organisation for c in listed] == [
            "Lab SARL",
            "Tie AG",
            "Acme GmbH",
            *(f"Company {n:03d}" for n in range(MAX_LISTED - 3)),  # the newest of the rest
        ]
    finally:
        db.dispose()


async def test_companies_visiting_now_in_chromium(tmp_path: Path, browser: Browser) -> None:
    db = make_engine(f"sqlite:///{tmp_path / 'nurture.db'}")
    settings = geo_settings(tmp_path / "geo")
    async with anonymous_only_service(db, settings) as http:
        url = str(http.base_url).rstrip("/")
        # A visitor from a company: two identified leads and one person not known yet.
        site = create_site(db, "www", [ORIGIN])
        acme = from_settings(settings)(ACME_VISITOR_IP)
        now = datetime.now(UTC)
        scored_lead(db, "acme-ada", 35)
        scored_lead(db, "acme-bob", 81)
        seen_from(db, site, acme, now - timedelta(hours=5), "acme-ada")
        seen_from(db, site, acme, now - timedelta(hours=4), "acme-bob")
        body = {"visitor": uuid.uuid4().hex, "events": [page_view("/pricing")]}
        assert (await post(http, f"/t/{site.site_key}", body, ACME_VISITOR_IP)).status_code == 202
        # An anonymous visit from a network whose registered name is markup.
        body = {"visitor": uuid.uuid4().hex, "events": [page_view("/")]}
        assert (await post(http, f"/t/{site.site_key}", body, "198.51.100.23")).status_code == 202

        # The newest: an anonymous visit made by Chromium itself, from a page of a second
        # site, sent as t.js sends it (a beacon); the browser is on 127.0.0.1, which the
        # tests' database places in Amsterdam, at "Loopback Labs BV".
        # Headless Chromium says so in its user agent, and bots are not tracked: a person's.
        page = await browser.new_page(viewport={"width": 1360, "height": 900}, user_agent=BROWSER)
        with serving_page("<!DOCTYPE html><title>Shop</title><p>shop</p>") as shop:
            shop_site = create_site(db, "shop", [shop.rstrip("/")])
            await page.goto(shop)
            sent = await page.evaluate(
                """([endpoint, body]) => navigator.sendBeacon(endpoint, JSON.stringify(body))""",
                [
                    f"{url}/t/{shop_site.site_key}",
                    {"visitor": uuid.uuid4().hex, "events": [page_view("/")]},
                ],
            )
            assert sent is True
            await wait_until(
                lambda: (
                    companies_visiting(db, datetime.now(UTC))[0].organisation == "Loopback Labs BV"
                ),
                what="Chromium's beacon stored",
            )

        link = DashboardLinks(TEST_SECRET, url).url()
        answer = await page.goto(link)
        assert answer is not None and answer.status == 200
        await page.wait_for_function("document.body.dataset.plotted === 'true'", timeout=20_000)
        rows = page.locator("#visiting tr.visiting-company")
        cells = [
            [cell.strip() for cell in await row.locator("td").all_inner_texts()]
            for row in await rows.all()
        ]
        assert [row[:2] for row in cells] == [
            ["Loopback Labs BV", "Amsterdam, NL"],
            [HOSTILE_ORGANISATION, "Lyon, FR"],
            ["Acme GmbH", "Berlin, DE"],
        ]
        assert cells[0][2:4] == ["1", "not yet identified"]
        assert cells[2][2:5] == ["3", "2", "81"]  # 3 visitors, 2 of them leads, the best 81
        assert cells[0][4] == cells[1][4] == "just now"
        # The organisation's name stayed text: no script ran, no template was evaluated.
        assert await page.evaluate("window.pwned") is None
        assert "49" not in cells[1][0]
        ARTIFACTS.mkdir(exist_ok=True)
        await page.locator("#visiting").screenshot(path=str(ARTIFACTS / "visiting-companies.png"))
        await page.screenshot(path=str(ARTIFACTS / "dashboard-visiting.png"), full_page=True)
        await page.set_viewport_size({"width": 400, "height": 860})  # a phone: the table scrolls
        await page.wait_for_timeout(300)
        assert await page.evaluate("document.documentElement.scrollWidth") <= 400
        await page.locator("#visiting").screenshot(path=str(ARTIFACTS / "visiting-phone.png"))

        # The same table for the charts API (a marketer's key), as JSON.
        _, marketer = create_key(db, "marketer", "embedding")
        data = await http.get(
            "/api/dashboard/charts", headers={"Authorization": f"Bearer {marketer}"}
        )
        visiting = data.json()["visiting_companies"]
        assert visiting["hours"] == 24
        assert [c["organisation"] for c in visiting["companies"]] == [
            "Loopback Labs BV",
            HOSTILE_ORGANISATION,
            "Acme GmbH",
        ]
        assert visiting["companies"][2]["best_score"] == 81
    db.dispose()
