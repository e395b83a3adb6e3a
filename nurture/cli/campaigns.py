"""``nurture campaign``: the campaigns marketing runs and what they cost (for the cost report)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer

from nurture.cli.output import JsonOpt, console, fail, print_json, table, warn
from nurture.store.campaigns import CampaignError, list_campaigns, record_cost, save_campaign
from nurture.store.db import database_url_from_env, make_engine

EXIT_USAGE = 2

campaign_app = typer.Typer(
    no_args_is_help=True, help="Campaigns and their costs (for 'nurture report cost')."
)


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date; use 2026-11-01", param_hint=option
        ) from None


@campaign_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="the name leads carry in their campaign field")],
    channel: Annotated[str | None, typer.Option(help="e.g. paid-search, events, email")] = None,
    description: Annotated[str | None, typer.Option(help="what the campaign is")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a campaign, or change its channel or description."""
    try:
        row, created = save_campaign(
            make_engine(database_url_from_env()), name, channel, description
        )
    except CampaignError as exc:
        raise typer.Exit(fail(str(exc), EXIT_USAGE)) from None
    if as_json:
        print_json({**row.model_dump(mode="json"), "created": created})
        return
    console.print(
        f"campaign {row.name} {'added' if created else 'updated'}"
        + (f" (channel {row.channel})" if row.channel else ""),
        highlight=False,
    )


@campaign_app.command("cost")
def cost(
    name: Annotated[str, typer.Argument(help="the campaign (added if new)")],
    amount: Annotated[float, typer.Option(help="what it cost over the period (0 or more)")],
    month: Annotated[str | None, typer.Option(help="a calendar month, e.g. 2026-11")] = None,
    since: Annotated[
        str | None, typer.Option("--from", help="period start, e.g. 2026-11-01")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="period end, exclusive, e.g. 2026-12-01")
    ] = None,
    currency: Annotated[str, typer.Option(help="three-letter code")] = "USD",
    note: Annotated[str, typer.Option(help="e.g. the invoice number")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Record what a campaign cost over a month (--month) or a period (--from, --until).

    Recording the same campaign and period again replaces the amount."""
    try:
        recorded = record_cost(
            make_engine(database_url_from_env()),
            name,
            amount,
            period_start=_day(since, "--from"),
            period_end=_day(until, "--until"),
            month=month,
            currency=currency,
            note=note,
        )
    except CampaignError as exc:
        raise typer.Exit(fail(str(exc), EXIT_USAGE)) from None
    if as_json:
        print_json(recorded.model_dump(mode="json"))
        return
    period = f"{recorded.period_start} until {recorded.period_end}"
    if recorded.replaced:
        what = f"replaced {recorded.previous_amount:,.2f} with {recorded.amount:,.2f}"
    else:
        what = f"recorded {recorded.amount:,.2f}"
    console.print(
        f"{recorded.campaign}, {period}: {what} {recorded.currency}"
        + (" (new campaign)" if recorded.campaign_created else ""),
        highlight=False,
    )
    if recorded.overlapping:
        warn(
            f"this period overlaps other costs of {recorded.campaign} "
            f"({'; '.join(recorded.overlapping)}): reports add them together"
        )


@campaign_app.command("list")
def list_command(as_json: JsonOpt = False) -> None:
    """Every campaign with the total of its recorded costs."""
    rows = list_campaigns(make_engine(database_url_from_env()))
    if as_json:
        print_json([r.model_dump(mode="json") for r in rows])
        return
    console.print(
        table(
            "Campaigns",
            ["campaign", "channel", "costs", "total cost", "description"],
            [
                [
                    r.name,
                    r.channel,
                    r.costs,
                    f"{r.total_cost:,.2f} {'/'.join(r.currencies)}".strip(),
                    r.description,
                ]
                for r in rows
            ],
        )
    )
