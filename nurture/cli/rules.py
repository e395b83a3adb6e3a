"""``nurture rules history``: every rules version the workers loaded, who changed it, what."""

from __future__ import annotations

import typer

from nurture.cli.output import JsonOpt, console, print_json
from nurture.store.db import database_url_from_env, make_engine
from nurture.store.rules_history import rules_history

rules_app = typer.Typer(no_args_is_help=True, help="The history of the rules.")


@rules_app.command("history")
def rules_history_command(as_json: JsonOpt = False) -> None:
    """Every rules version (scoring, cadences, routing and templates as one), newest first:
    when a worker first loaded it, who changed it (the git author of the config directory,
    else NURTURE_RULES_AUTHOR) and what changed from the version before."""
    versions = rules_history(make_engine(database_url_from_env()))
    if as_json:
        print_json([v.as_json() for v in versions])
        return
    if not versions:
        console.print("No rules version recorded yet: a worker records each one it loads.")
        return
    for v in versions:  # a block each: the changes are long lines a table would cut up
        console.print(
            f"{v.version}  {v.first_loaded_at:%Y-%m-%d %H:%M} UTC  by {v.author}",
            style="bold",
            highlight=False,
        )
        for change in v.changes:
            console.print(f"  {change}", highlight=False, soft_wrap=True)
