"""``nurture db``: the schema of the configured database (``NURTURE_DATABASE_URL``, else
``data/nurture.db``). Every process migrates it when it starts; these commands do it on demand
and tell where a database stands."""

from __future__ import annotations

import typer
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from nurture.cli.output import JsonOpt, console, fail, print_json
from nurture.store.db import database_url_from_env, make_engine
from nurture.store.migrations import (
    HEAD,
    KNOWN_REVISIONS,
    SchemaTooNewError,
    current_revision,
    migrate,
)

db_app = typer.Typer(no_args_is_help=True, help="The database schema (migrations).")

EXIT_BEHIND = 1
EXIT_UNREACHABLE = 2
EXIT_AHEAD = 3


def _engine() -> Engine:
    return make_engine(database_url_from_env(), migrate=False)


def _unreachable(engine: Engine, exc: SQLAlchemyError) -> typer.Exit:
    where = engine.url.render_as_string(hide_password=True)
    return typer.Exit(fail(f"database {where}: {exc}", EXIT_UNREACHABLE))


@db_app.command("upgrade")
def upgrade(as_json: JsonOpt = False) -> None:
    """Migrate the database to the newest schema. A database made before migrations existed
    keeps its rows. Safe beside running workers and services (they do the same at start)."""
    engine = _engine()
    try:
        before = current_revision(engine)
        migrate(engine)
        after = current_revision(engine)
    except SQLAlchemyError as exc:
        raise _unreachable(engine, exc) from None
    except SchemaTooNewError as exc:
        raise typer.Exit(fail(str(exc), EXIT_AHEAD)) from None
    finally:
        engine.dispose()
    if as_json:
        print_json({"from": before, "to": after, "head": HEAD})
    elif before == after:
        console.print(f"database already at {after} (head)", highlight=False)
    else:
        console.print(f"database upgraded: {before or 'none'} → {after}", highlight=False)


@db_app.command("current")
def current(as_json: JsonOpt = False) -> None:
    """The database's schema revision. Exit 1 when it is behind (run 'nurture db upgrade'),
    3 when it is ahead (a newer release migrated it)."""
    engine = _engine()
    try:
        revision = current_revision(engine)
    except SQLAlchemyError as exc:
        raise _unreachable(engine, exc) from None
    finally:
        engine.dispose()
    ahead = revision is not None and revision not in KNOWN_REVISIONS
    if as_json:
        print_json(
            {"revision": revision, "head": HEAD, "up_to_date": revision == HEAD, "ahead": ahead}
        )
    elif revision == HEAD:
        console.print(f"{revision} (head)", highlight=False)
    elif ahead:
        console.print(
            f"{revision}: newer than this release (head {HEAD}); upgrade Nurture", highlight=False
        )
    else:
        console.print(
            f"{revision or 'none'} (head is {HEAD}: run 'nurture db upgrade')", highlight=False
        )
    if ahead:
        raise typer.Exit(EXIT_AHEAD)
    if revision != HEAD:
        raise typer.Exit(EXIT_BEHIND)
