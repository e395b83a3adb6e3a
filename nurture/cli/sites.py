"""``nurture sites``: the websites the tracker may report from, and their public keys; and
``nurture lead find --email``: the leads holding an address."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from nurture.access.consent import public_url_from_env
from nurture.cli.output import JsonOpt, console, fail, print_json, table
from nurture.store.db import database_url_from_env, make_engine
from nurture.store.lead_lookup import leads_holding
from nurture.store.tracking import Site, SiteError, create_site, list_sites, revoke_site

EXIT_USAGE = 2
EXIT_NOTHING_FOUND = 1

sites_app = typer.Typer(
    no_args_is_help=True, help="Websites the tracker reports from (docs/tracking.md)."
)


def snippet(site: Site) -> str:
    """What a page embeds to be tracked."""
    consent = ' data-consent="denied"' if site.consent_default == "denied" else ""
    return (
        f'<script async src="{public_url_from_env()}/t.js" '
        f'data-site="{site.site_key}"{consent}></script>'
    )


@sites_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="a short name, e.g. www or blog")],
    origin: Annotated[
        list[str], typer.Option(help="an origin the pages are served from (repeat for more)")
    ],
    consent: Annotated[
        Literal["granted", "denied"],
        typer.Option(help="track from the first page, or only after nurture('consent', …)"),
    ] = "granted",
    as_json: JsonOpt = False,
) -> None:
    """Register a website and print its public site key and the snippet for its pages."""
    try:
        site = create_site(make_engine(database_url_from_env()), name, origin, consent)
    except SiteError as exc:
        raise typer.Exit(fail(str(exc), EXIT_USAGE)) from None
    if as_json:
        print_json({**site.summary(), "snippet": snippet(site)})
        return
    console.print(f"site {site.name}: key {site.site_key}", highlight=False)
    console.print(f"origins: {', '.join(site.origin_list())}", highlight=False)
    console.print("Put this in every page (before </head>):", highlight=False)
    console.print(snippet(site), soft_wrap=True, highlight=False, markup=False)


@sites_app.command("list")
def list_command(
    revoked: Annotated[bool, typer.Option(help="revoked sites too")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The registered sites, their keys and origins."""
    sites = list_sites(make_engine(database_url_from_env()), revoked=revoked)
    if as_json:
        print_json([site.summary() for site in sites])
        return
    if not sites:
        console.print("no sites yet: nurture sites create --name www --origin https://…")
        return
    rows = [
        [
            s.name,
            s.site_key,
            " ".join(s.origin_list()),
            s.consent_default,
            "revoked" if s.revoked_at else "live",
        ]
        for s in sites
    ]
    console.print(table("Sites", ["name", "site key", "origins", "consent", "state"], rows))


@sites_app.command("revoke")
def revoke(
    site: Annotated[str, typer.Argument(help="the site's name or key")],
    as_json: JsonOpt = False,
) -> None:
    """Stop taking tracking events and forms with the site's key (within seconds)."""
    try:
        revoked = revoke_site(make_engine(database_url_from_env()), site)
    except SiteError as exc:
        raise typer.Exit(fail(str(exc), EXIT_USAGE)) from None
    if as_json:
        print_json(revoked.summary())
        return
    console.print(f"site key {revoked.site_key} revoked", highlight=False)


def lead_find(
    email: Annotated[str, typer.Option(help="the address to look for (case does not matter)")],
    as_json: JsonOpt = False,
) -> None:
    """The leads holding an address, most recently active first (exit 1 when none)."""
    leads = leads_holding(make_engine(database_url_from_env()), email)
    found = [
        {
            "lead_id": lead.lead_id,
            "stage": lead.stage,
            "score": lead.score,
            "owner": lead.owner,
            "updated_at": lead.updated_at.isoformat(),
        }
        for lead in leads
    ]
    if as_json:
        print_json(found)
    elif found:
        rows = [[f["lead_id"], f["stage"], f["score"], f["owner"], f["updated_at"]] for f in found]
        console.print(table("Leads", ["lead", "stage", "score", "owner", "last change"], rows))
    else:
        console.print("no lead holds that address", highlight=False)
    if not found:
        raise typer.Exit(EXIT_NOTHING_FOUND)
