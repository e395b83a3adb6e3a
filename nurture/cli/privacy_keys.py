"""``nurture master-key`` (the key that wraps every lead's data key) and ``nurture codec-link``
(a signed codec endpoint for a Temporal Web UI)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from sqlalchemy import func
from sqlmodel import Session, col, select

from nurture.access.codec_links import CodecLinks
from nurture.access.consent import ConsentConfigError, LinkSigner
from nurture.access.dashboard_links import MAX_LINK_DAYS
from nurture.cli.output import JsonOpt, console, fail, print_json
from nurture.privacy.key_store import rewrap_keys
from nurture.privacy.master_keys import MasterKeyError, MasterKeys, generate
from nurture.store.data_keys import DataKey
from nurture.store.db import data_dir_from_env, database_url_from_env, make_engine

master_key_app = typer.Typer(
    no_args_is_help=True,
    help="The master key that wraps each lead's data key (payload encryption).",
)


@master_key_app.command("generate")
def generate_key() -> None:
    """Print a new master key for NURTURE_MASTER_KEY (keep it like a password: whoever holds
    it and the database reads every lead's history)."""
    console.print(generate(), highlight=False)


def _master_keys() -> MasterKeys:
    try:
        return MasterKeys.from_env(data_dir_from_env())
    except MasterKeyError as exc:
        raise typer.Exit(fail(str(exc), 2)) from None


@master_key_app.command("status")
def status(as_json: JsonOpt = False) -> None:
    """How many data keys each master key wraps, and how many were shredded (erased leads)."""
    keys = _master_keys()
    engine = make_engine(database_url_from_env())
    with Session(engine) as session:
        rows = session.exec(
            select(DataKey.master_key_id, func.count())
            .where(col(DataKey.wrapped).is_not(None))
            .group_by(col(DataKey.master_key_id))
        ).all()
        shredded = session.exec(
            select(func.count()).where(col(DataKey.shredded_at).is_not(None))
        ).one()
    wrapped = {master or "?": count for master, count in rows}
    document = {"current": keys.current_id, "wrapped_by": wrapped, "shredded": shredded}
    if as_json:
        print_json(document)
        return
    console.print(f"current master key: {keys.current_id}", highlight=False)
    for master, count in sorted(wrapped.items()):
        mark = (
            ""
            if master == keys.current_id
            else "  (not this process's NURTURE_MASTER_KEY: after a rotation, run "
            "'nurture master-key rewrap' once every process has the new key)"
        )
        console.print(f"  {count:>9,} data keys wrapped by {master}{mark}", highlight=False)
    console.print(f"  {shredded:>9,} data keys shredded", highlight=False)


@master_key_app.command("rewrap")
def rewrap() -> None:
    """After a rotation (new key in NURTURE_MASTER_KEY, the old one in NURTURE_MASTER_KEYS_OLD):
    re-wrap every data key with the current master key. Then the old key can be dropped.
    Safe to run again, and beside running workers."""
    keys = _master_keys()
    engine = make_engine(database_url_from_env())
    with Session(engine) as session:
        total = session.exec(
            select(func.count()).where(
                col(DataKey.wrapped).is_not(None), col(DataKey.master_key_id) != keys.current_id
            )
        ).one()
    columns = (TextColumn("re-wrapping"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("rewrap", total=total)
        try:
            done = rewrap_keys(engine, keys, lambda n: progress.update(task, completed=n))
        except MasterKeyError as exc:
            raise typer.Exit(fail(str(exc), 1)) from None
    console.print(
        f"{done:,} data keys re-wrapped; every live data key is now wrapped by {keys.current_id}"
        if done
        else f"nothing to re-wrap: every live data key is wrapped by {keys.current_id}",
        highlight=False,
    )


def codec_link(
    days: Annotated[
        int, typer.Option(min=1, max=MAX_LINK_DAYS, help="how many days the endpoint works")
    ] = 30,
) -> None:
    """Print a signed codec endpoint to paste into a Temporal Web UI (Settings, Data Encoder,
    or its server's codec.endpoint): the UI then reads lead histories, which are encrypted, as
    plain JSON. Whoever holds it reads every lead's history: share it like a password. 'nurture
    up' gives its own UI one. The temporal CLI can use /codec with an operator API key instead:
    --codec-endpoint URL/codec --codec-auth 'Bearer nk_…'."""
    try:
        signer = LinkSigner.from_env(create=False)
    except ConsentConfigError as exc:
        raise typer.Exit(fail(str(exc), 2)) from None
    endpoint = CodecLinks(signer.secret, signer.public_url).endpoint(timedelta(days=days))
    console.print(endpoint, highlight=False, soft_wrap=True)
