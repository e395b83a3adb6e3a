"""``nurture keys``: API keys of the HTTP service, per role (see :mod:`nurture.access.auth`)."""

from __future__ import annotations

from typing import Annotated

import typer

from nurture.access.auth import ROLES, create_key, list_keys, revoke_key
from nurture.access.consent import ConsentConfigError, LinkSigner
from nurture.access.rep_links import RepClaim, RepLinks
from nurture.cli.output import JsonOpt, console, fail, print_json, table
from nurture.store.db import database_url_from_env, make_engine
from nurture.web.inbox import REP_ID

keys_app = typer.Typer(no_args_is_help=True, help="API keys for the HTTP service.")


@keys_app.command("create")
def create(
    role: Annotated[str, typer.Option(help=", ".join(ROLES))],
    name: Annotated[str, typer.Option(help="who or what uses it, e.g. 'website tracker'")],
    rep: Annotated[str | None, typer.Option(help="rep keys: the rep id it acts as")] = None,
    as_json: JsonOpt = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="print the key alone, e.g. KEY=$(nurture keys …)")
    ] = False,
) -> None:
    """Create a key. It is shown once: store it now (only a hash is kept)."""
    try:
        row, key = create_key(make_engine(database_url_from_env()), role, name, rep)  # type: ignore[arg-type]
    except ValueError as exc:
        raise typer.Exit(fail(str(exc), 2)) from None
    if as_json:
        print_json({"id": row.id, "role": row.role, "rep": row.rep_id, "key": key})
    elif quiet:
        print(key)
    else:
        console.print(f"key {row.id} ({row.role}{', rep ' + row.rep_id if row.rep_id else ''}):")
        console.print(key, highlight=False, soft_wrap=True)
        console.print("shown once; send it as 'Authorization: Bearer <key>'", style="dim")


@keys_app.command("list")
def list_command(as_json: JsonOpt = False) -> None:
    """Every key (never the secret)."""
    rows = list_keys(make_engine(database_url_from_env()))
    if as_json:
        print_json([r.model_dump(mode="json", exclude={"secret_hash"}) for r in rows])
        return
    console.print(
        table(
            "API keys",
            ["id", "name", "role", "rep", "created", "revoked"],
            [
                [r.id, r.name, r.role, r.rep_id, f"{r.created_at:%Y-%m-%d}", r.revoked_at]
                for r in rows
            ],
        )
    )


@keys_app.command("revoke")
def revoke(key_id: str) -> None:
    """Revoke a key at once; requests with it get 401."""
    if not revoke_key(make_engine(database_url_from_env()), key_id):
        raise typer.Exit(fail(f"no key {key_id!r}; see 'nurture keys list'"))
    console.print(f"key {key_id} revoked")


def inbox_link(rep: Annotated[str, typer.Option("--rep", help="the rep id")]) -> None:
    """Print a rep's signed inbox link (valid for a week), e.g. to send it by hand.

    The link points at NURTURE_PUBLIC_URL, else at this machine's HTTP service
    (http://NURTURE_HTTP_HOST:NURTURE_HTTP_PORT, default 127.0.0.1:8080): set
    NURTURE_PUBLIC_URL when reps open links from another machine."""
    if not REP_ID.fullmatch(rep):
        raise typer.Exit(fail(f"{rep!r} is not a rep id (letters, digits, . _ -)", 2))
    try:
        signer = LinkSigner.from_env(create=False)
    except ConsentConfigError as exc:
        raise typer.Exit(fail(str(exc), 2)) from None
    links = RepLinks(signer.secret, signer.public_url)
    console.print(links.url(RepClaim(rep=rep, action="inbox")), highlight=False, soft_wrap=True)
